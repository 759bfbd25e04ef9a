"""The rate limit's counter store: `migrate` makes it, and its failure never fails a request."""

from __future__ import annotations

import json
import os
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from django.core.management import call_command
from django.db import connection
from psycopg import sql

from tests.api_fixtures import ClubClient
from tests.helpers import manage_process, runserver

pytestmark = pytest.mark.django_db


@pytest.fixture
def new_database_url(tmp_path: Path) -> Iterator[str]:
    """A database of the kind the tests run on, created empty, dropped afterwards."""
    if connection.vendor == "sqlite":
        yield f"sqlite:///{tmp_path / 'new.sqlite3'}"
        return
    params = connection.get_connection_params()
    server = {key: params[key] for key in ("host", "port", "user") if params.get(key)}
    name = f"{connection.settings_dict['NAME']}_new"
    drop = sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
    with psycopg.connect(dbname="postgres", autocommit=True, **server) as admin:
        admin.execute(drop)
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    user, host, port = server.get("user", ""), server.get("host", ""), server.get("port", "")
    try:
        yield f"postgres://{user}@{host}:{port}/{name}"
    finally:
        with psycopg.connect(dbname="postgres", autocommit=True, **server) as admin:
            admin.execute(drop)


def test_a_new_database_serves_writes_after_migrate_alone(new_database_url: str) -> None:
    """The operator's set-up, step by step: no createcachetable, the default cache."""
    env = {key: value for key, value in os.environ.items() if key != "CACHE_URL"}
    env.update(DATABASE_URL=new_database_url, DEBUG="false", LOG_LEVEL="ERROR")
    manage_process(env, "migrate", "-v0")
    manage_process(env, "create_club", "fresh")
    token = manage_process(env, "create_api_token", "fresh").strip().splitlines()[-1]

    with runserver(env) as (port, _pid):
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/v3/fresh/members_groups",
            data=json.dumps({"name": "First"}).encode(),
            headers={
                "Content-Type": "application/json",
                "X-Client-Authorization": token,
                "X-User-Agent": "tests/1.0",
                "X-Product-Name": "fresh set-up",
            },
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            status, body = response.status, json.load(response)

    assert status == 201
    assert body["name"] == "First"


def test_migrate_makes_the_table_of_the_database_cache_cache_url_names(
    settings: Any, api: ClubClient
) -> None:
    settings.CACHES = {
        "default": {"BACKEND": "loyalty.cache.DatabaseCache", "LOCATION": "rate_counters"}
    }
    assert "rate_counters" not in connection.introspection.table_names()

    call_command("migrate", verbosity=0)
    response = api.post("members_groups", {"name": "Counted"})

    assert response.status_code == 201
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM rate_counters")
        assert cursor.fetchone() == (1,)


@pytest.mark.parametrize(
    "store",
    [
        {"BACKEND": "loyalty.cache.DatabaseCache", "LOCATION": "no_such_table"},
        # Nothing listens on port 1: every call to the store fails to connect.
        {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": "redis://127.0.0.1:1/0",
        },
    ],
    ids=["database-table-missing", "redis-unreachable"],
)
def test_a_failing_rate_limit_store_lets_requests_through_with_a_warning(
    settings: Any, api: ClubClient, caplog: pytest.LogCaptureFixture, store: dict[str, str]
) -> None:
    settings.CACHES = {"default": store}
    settings.API_RATE_LIMIT = "1/min"

    statuses = [api.post("members_groups", {"name": f"G{n}"}).status_code for n in range(3)]

    assert statuses == [201, 201, 201]
    warnings = [r for r in caplog.records if r.name == "loyalty.api.throttling"]
    assert [r.getMessage() for r in warnings] == [
        "The rate-limit store failed: request let through"
    ] * 3
    assert all(r.levelname == "WARNING" and r.exc_info for r in warnings)
