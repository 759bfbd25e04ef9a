"""Database timeouts of web requests: a statement running too long or a lock held too long
is a 503 with Retry-After within the timeout plus a second, and nothing is half written."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest
from django.db import DEFAULT_DB_ALIAS, connection, connections

from groups.models import MembersGroup, Membership, MembershipEvent
from loyalty.db_routing import REPLICA
from loyalty.models import Club
from tests.api_fixtures import ClubClient
from tests.factories import ClubFactory, GroupFactory, MemberFactory

# The lock is held by a second connection, which sees committed rows only.
pytestmark = pytest.mark.django_db(transaction=True)

LOCK_TIMEOUT_MS = 500
STATEMENT_TIMEOUT_MS = 700


@pytest.fixture
def web_timeouts(settings: Any) -> Iterator[None]:
    """Short web timeouts; the connection gets the defaults back afterwards."""
    settings.DB_STATEMENT_TIMEOUT_MS = STATEMENT_TIMEOUT_MS
    settings.DB_LOCK_TIMEOUT_MS = LOCK_TIMEOUT_MS
    yield
    with connection.cursor() as cursor:
        cursor.execute("RESET statement_timeout; RESET lock_timeout")


@pytest.fixture
def setup(make_client: Callable[..., ClubClient]) -> tuple[ClubClient, MembersGroup]:
    club: Club = ClubFactory()
    MemberFactory(club=club, email="ann@example.com")
    return make_client(club), GroupFactory(club=club)


def add_ann(api: ClubClient, group: MembersGroup) -> tuple[Any, float]:
    started = time.perf_counter()
    response = api.post(
        f"members_groups/{group.pk}/members",
        {"identifier_type": "email", "identifiers": ["ann@example.com"]},
        format="json",
    )
    return response, time.perf_counter() - started


def report(line: str) -> None:
    """Show a measured figure in the test output (pytest -s)."""
    print(f"\n{line}")  # noqa: T201 - the measurement is what the test reports


def assert_nothing_written(group: MembersGroup) -> None:
    group.refresh_from_db()
    assert group.members_count == 0
    assert not Membership.objects.filter(group=group).exists()
    assert not MembershipEvent.objects.filter(group_id=group.pk).exists()


def test_a_request_waiting_on_a_row_lock_past_the_lock_timeout_is_503(
    web_timeouts: None, setup: tuple[ClubClient, MembersGroup]
) -> None:
    api, group = setup
    dsn = connection.get_connection_params()
    with psycopg.connect(**dsn) as other:  # a transaction until the block ends
        other.execute("SELECT 1 FROM groups_membersgroup WHERE id = %s FOR UPDATE", [group.pk])

        response, elapsed = add_ann(api, group)

    report(f"lock_timeout {LOCK_TIMEOUT_MS} ms: answered {response.status_code} in {elapsed:.3f} s")
    assert response.status_code == 503
    assert response.json() == {"error": "The data is locked by another operation: try again later."}
    assert int(response["Retry-After"]) > 0
    assert LOCK_TIMEOUT_MS / 1000 <= elapsed < LOCK_TIMEOUT_MS / 1000 + 1
    assert_nothing_written(group)
    # Once the lock is gone the same call succeeds.
    assert add_ann(api, group)[0].status_code == 200


def test_a_statement_running_past_the_statement_timeout_is_503(
    web_timeouts: None, setup: tuple[ClubClient, MembersGroup]
) -> None:
    api, group = setup

    def slow_events(execute: Callable[..., Any], sql: str, *args: Any) -> Any:
        # The membership rows are written by then: the rollback must take them back.
        if sql.lstrip().startswith(f"INSERT INTO {MembershipEvent._meta.db_table}"):
            execute("SELECT pg_sleep(10)", None, False, args[-1])
        return execute(sql, *args)

    with connection.execute_wrapper(slow_events):
        response, elapsed = add_ann(api, group)

    report(
        f"statement_timeout {STATEMENT_TIMEOUT_MS} ms: "
        f"answered {response.status_code} in {elapsed:.3f} s"
    )
    assert response.status_code == 503
    assert response.json() == {
        "error": "The request took longer than the database allows: try again later."
    }
    assert int(response["Retry-After"]) > 0
    assert STATEMENT_TIMEOUT_MS / 1000 <= elapsed < STATEMENT_TIMEOUT_MS / 1000 + 1
    assert_nothing_written(group)


def show_statement_timeout() -> str:
    with connection.cursor() as cursor:
        cursor.execute("SHOW statement_timeout")
        return str(cursor.fetchone()[0])


def test_commands_and_the_worker_connect_without_the_web_timeouts(
    web_timeouts: None, setup: tuple[ClubClient, MembersGroup]
) -> None:
    """A connection Django opens outside a web request (a command, the task worker) has
    the server's default, no timeout; a web request's connection has the setting's."""
    api, _group = setup
    connection.close()
    outside = show_statement_timeout()

    api.get("members_groups")

    assert outside == "0"
    assert show_statement_timeout() == f"{STATEMENT_TIMEOUT_MS}ms"


@pytest.mark.django_db(transaction=True, databases=[DEFAULT_DB_ALIAS, REPLICA])
def test_reads_sent_to_the_replica_get_the_web_timeouts_too(
    web_timeouts: None, setup: tuple[ClubClient, MembersGroup], settings: Any
) -> None:
    settings.DATABASE_ROUTERS = ["loyalty.db_routing.ReplicaRouter"]
    api, _group = setup
    connections[REPLICA].close()

    assert api.get("members_groups").status_code == 200

    with connections[REPLICA].cursor() as cursor:
        cursor.execute("SHOW statement_timeout")
        on_replica = cursor.fetchone()[0]
        cursor.execute("RESET statement_timeout; RESET lock_timeout")
    assert on_replica == f"{STATEMENT_TIMEOUT_MS}ms"
