"""The readiness probe: the database, the cache and the task backend, each checked, each
found down by a real unreachable server (nothing listens on port 1)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from django.test import Client

from loyalty.api import error_responses as exceptions

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parents[2]
NOWHERE = "redis://127.0.0.1:1/0"
REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")


def test_ready_when_the_database_cache_and_task_table_answer(settings: Any) -> None:
    settings.TASKS = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend"}}

    response = Client().get("/readyz")

    assert response.status_code == 200
    assert response.json() == {
        "status": "ok",
        "checks": {"database": "ok", "cache": "ok", "tasks": "ok"},
    }


def test_ready_with_redis_for_the_cache_and_the_tasks(settings: Any) -> None:
    settings.CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}
    }
    settings.TASKS = {"default": {"BACKEND": "django_tasks_rq.RQBackend", "QUEUES": ["default"]}}
    settings.RQ_QUEUES = {"default": {"URL": REDIS_URL}}

    response = Client().get("/readyz")

    assert response.status_code == 200
    assert response.json()["checks"] == {"database": "ok", "cache": "ok", "tasks": "ok"}


def test_tasks_run_in_process_need_no_check() -> None:
    # The suite's own backend: tasks run where they are enqueued.
    response = Client().get("/readyz")

    assert response.status_code == 200
    assert response.json()["checks"]["tasks"] == (
        "nothing to check (tasks run in the process that enqueues them)"
    )


def test_not_ready_when_the_cache_is_down(settings: Any) -> None:
    settings.CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": NOWHERE}
    }

    response = Client().get("/readyz")

    assert response.status_code == 503
    assert response["Retry-After"] == str(exceptions.RETRY_AFTER_SECONDS)
    body = response.json()
    assert body["error"] == "Not ready: cache unavailable."
    assert body["checks"]["cache"] == "unavailable (ConnectionError)"
    assert body["checks"]["database"] == "ok"
    # The cheap liveness probe does not ask the cache.
    assert Client().get("/healthz").status_code == 200


def test_not_ready_when_the_task_backends_redis_is_down(settings: Any) -> None:
    settings.TASKS = {"default": {"BACKEND": "django_tasks_rq.RQBackend", "QUEUES": ["default"]}}
    settings.RQ_QUEUES = {"default": {"URL": NOWHERE}}

    response = Client().get("/readyz")

    assert response.status_code == 503
    body = response.json()
    assert body["error"] == "Not ready: tasks unavailable."
    assert body["checks"] == {
        "database": "ok",
        "cache": "ok",
        "tasks": "unavailable (ConnectionError)",
    }


def test_not_ready_when_the_database_is_down() -> None:
    """A process whose database does not answer: the database, the database cache and the
    database task backend are all reported down, and liveness fails as well."""
    script = (
        "import django, json; django.setup(); from django.test import Client; c = Client(); "
        "print(json.dumps([[r.status_code, r.json()] for r in "
        "(c.get('/readyz'), c.get('/healthz'))]))"
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        env={
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "loyalty.settings",
            "DATABASE_URL": "postgres://postgres@127.0.0.1:1/nothing",
            "LOG_LEVEL": "CRITICAL",
        },
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )

    ready, live = json.loads(result.stdout.splitlines()[-1])
    assert ready == [
        503,
        {
            "error": "Not ready: database, cache, tasks unavailable.",
            "checks": {
                "database": "unavailable (OperationalError)",
                "cache": "unavailable (OperationalError)",
                "tasks": "unavailable (OperationalError)",
            },
        },
    ]
    assert live == [503, {"error": exceptions.DATABASE_UNAVAILABLE}]


def test_readiness_refuses_other_methods_in_the_error_format() -> None:
    response = Client().post("/readyz")

    assert response.status_code == 405
    assert response.json() == {"error": "Method not allowed"}
