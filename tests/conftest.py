"""Shared fixtures: a club with its system group, and a few members."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.db.models import Q
from django.test import Client

from groups.models import ALL_MEMBERS_KEY, MembersGroup
from loyalty.models import Club
from tests.factories import ClubFactory

# The API clients and tokens (tests/api_fixtures.py), for every test module.
pytest_plugins = ["tests.api_fixtures", "tests.webhook_receiver"]

# Run in the PostgreSQL pass of ``make test`` only, not collected in the SQLite pass:
# ``postgres`` proves what only a PostgreSQL server has (row locks under concurrency,
# statement and lock timeouts, killed connections); ``browser`` walks the admin in Chromium
# against a live server on the production database, once.
POSTGRES_ONLY = {Path(__file__).parent / "postgres", Path(__file__).parent / "browser"}


# Run only in the replica pass of ``make test``, against a real streaming replica that the
# tests may stop and pause (scripts/test starts it and names it in TEST_REPLICA_PGDATA),
# and in its pooled pass, through PgBouncer in transaction pooling.
REPLICA_ONLY = Path(__file__).parent / "replica"
POOLED_ONLY = Path(__file__).parent / "pooled"


def pytest_configure(config: pytest.Config) -> None:
    databases = django_settings.DATABASES
    if "replica" in databases:
        # A real replica (DATABASE_REPLICA_URL) streams the primary's test database: it
        # mirrors it rather than getting one of its own.
        databases["replica"]["TEST"] = {"MIRROR": "default"}
    else:
        # A read-replica alias that mirrors the test database, for the routing tests
        # (tests/loyalty/test_replica_routing.py); nothing routes to it unless a test says so.
        databases["replica"] = {**databases["default"], "TEST": {"MIRROR": "default"}}


def pytest_ignore_collect(collection_path: Path) -> bool | None:
    if collection_path in POSTGRES_ONLY:
        engine = django_settings.DATABASES["default"]["ENGINE"]
        return None if "postgresql" in engine else True
    if collection_path == REPLICA_ONLY:
        return None if os.environ.get("TEST_REPLICA_PGDATA") else True
    if collection_path == POOLED_ONLY:
        return None if django_settings.DB_TRANSACTION_POOLING else True
    return None


@pytest.fixture(autouse=True)
def immediate_tasks(settings: Any) -> None:
    """Run enqueued tasks at once, in the test's process (STYLE: ImmediateBackend in tests)."""
    settings.TASKS = {"default": {"BACKEND": "django_tasks.backends.immediate.ImmediateBackend"}}


@pytest.fixture
def club(db: None) -> Club:
    return ClubFactory(slug="red-club", name="Red Club")


@pytest.fixture
def other_club(db: None) -> Club:
    return ClubFactory(slug="blue-club", name="Blue Club")


@pytest.fixture
def all_members(club: Club) -> MembersGroup:
    return MembersGroup.objects.get(club=club, system_key=ALL_MEMBERS_KEY)


@pytest.fixture
def staff_client_with(club: Club, other_club: Club) -> Callable[..., Client]:
    """A logged-in staff member who manages ``club`` only, with the permissions named
    ``"app_label.codename"``; ``other_club`` exists beside it, out of reach."""

    def make(*permissions: str) -> Client:
        user = get_user_model().objects.create_user("carol", is_staff=True)
        wanted = Q(pk__in=[])
        for permission in permissions:
            app_label, codename = permission.split(".")
            wanted |= Q(content_type__app_label=app_label, codename=codename)
        user.user_permissions.set(Permission.objects.filter(wanted))
        club.managers.add(user)
        client = Client()
        client.force_login(user)
        return client

    return make
