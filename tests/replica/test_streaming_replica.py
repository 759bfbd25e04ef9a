"""Against a real streaming replica (a hot standby of the test cluster, fed by PostgreSQL's
replication): API lists served by it, a stopped replica passed by without a 500, and
replication lag never showing as an old count after a write."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.db import DEFAULT_DB_ALIAS, DatabaseError, connections, transaction
from django.test import Client

from groups.models import MembersGroup
from loyalty.db_routing import REPLICA
from loyalty.models import Club
from tests.api_fixtures import ClubClient
from tests.factories import ClubFactory, MemberFactory
from tests.helpers import wait_for_replica
from tests.replica.conftest import Standby

pytestmark = pytest.mark.django_db(transaction=True, databases=[DEFAULT_DB_ALIAS, REPLICA])


def read_group(api: ClubClient, pk: int) -> tuple[Any, list[str], list[str]]:
    """The API's show of a group, and the statements it ran on each server (recorded
    without connecting, unlike CaptureQueriesContext: the replica may be stopped)."""
    ran: dict[str, list[str]] = {DEFAULT_DB_ALIAS: [], REPLICA: []}

    def recorder(alias: str) -> Callable[..., Any]:
        def record(execute: Callable[..., Any], sql: str, *args: Any) -> Any:
            ran[alias].append(sql)
            return execute(sql, *args)

        return record

    with (
        connections[DEFAULT_DB_ALIAS].execute_wrapper(recorder(DEFAULT_DB_ALIAS)),
        connections[REPLICA].execute_wrapper(recorder(REPLICA)),
    ):
        response = api.get(f"members_groups/{pk}")
    assert response.status_code == 200, response.content
    return response.json(), ran[DEFAULT_DB_ALIAS], ran[REPLICA]


def touches_groups(statements: list[str]) -> bool:
    return any('"groups_membersgroup"' in sql for sql in statements)


def test_the_replica_is_a_read_only_standby_of_the_primary(standby: Standby) -> None:
    with connections[REPLICA].cursor() as cursor:
        cursor.execute("SELECT pg_is_in_recovery()")
        assert cursor.fetchone() == (True,)
        with pytest.raises(DatabaseError, match="read-only"), transaction.atomic(using=REPLICA):
            cursor.execute("CREATE TABLE refused (id int)")

    club = ClubFactory()
    wait_for_replica()

    assert Club.objects.using(REPLICA).get(pk=club.pk).slug == club.slug


def test_lists_and_shows_are_served_by_the_replica(
    standby: Standby, club: Club, make_client: Callable[..., ClubClient]
) -> None:
    api = make_client(club)
    group = api.post("members_groups", {"name": "Red"}).json()
    wait_for_replica()

    shown, primary, replica = read_group(api, group["id"])

    assert shown["name"] == "Red"
    assert touches_groups(replica)
    assert not touches_groups(primary)


def test_a_stopped_replica_is_passed_by_and_reads_come_back_to_it_once_it_runs(
    standby: Standby, club: Club, make_client: Callable[..., ClubClient]
) -> None:
    api = make_client(club)
    MemberFactory(club=club, email="ann@example.com")
    group = api.post("members_groups", {"name": "Red"}).json()
    wait_for_replica()

    standby.stop()
    try:
        for _ in range(2):  # the second without asking the stopped server again
            shown, primary, replica = read_group(api, group["id"])
            assert shown["name"] == "Red"
            assert touches_groups(primary)
            assert replica == []
        listed = api.get("members", {"email": "ann@example.com"})
        assert listed.status_code == 200
        assert [m["email"] for m in listed.json()["members"]] == ["ann@example.com"]
        ready = Client().get("/readyz")
        assert ready.status_code == 200
        assert ready.json()["checks"]["replica"] == "unavailable (reads go to the primary)"
    finally:
        standby.start()

    wait_for_replica()
    _shown, primary, replica = read_group(api, group["id"])
    assert touches_groups(replica)
    assert not touches_groups(primary)
    assert Client().get("/readyz").json()["checks"]["replica"] == "ok"


def test_replication_lag_never_shows_an_old_count_after_a_write(
    standby: Standby,
    club: Club,
    other_club: Club,
    make_client: Callable[..., ClubClient],
) -> None:
    api = make_client(club)
    for n in range(3):
        MemberFactory(club=club, email=f"m{n}@example.com")
    group = api.post("members_groups", {"name": "Red"}).json()
    others = make_client(other_club)
    other_group = others.post("members_groups", {"name": "Blue"}).json()
    wait_for_replica()

    standby.pause_replay()
    added = api.post(
        f"members_groups/{group['id']}/members",
        {"identifier_type": "email", "identifiers": ["m0@example.com", "m1@example.com"]},
    )
    assert added.status_code == 200, added.content
    shown, primary, replica = read_group(api, group["id"])

    # The replica really is behind...
    assert MembersGroup.objects.using(REPLICA).get(pk=group["id"]).members_count == 0
    # ...so the club's reads were served by the primary, with the count the write left.
    assert shown["members_count"] == 2
    assert touches_groups(primary)
    assert not touches_groups(replica)
    # Another club, which wrote nothing since, still reads from the replica.
    _shown, primary, replica = read_group(others, other_group["id"])
    assert touches_groups(replica)

    standby.resume_replay()
    wait_for_replica()
    shown, primary, replica = read_group(api, group["id"])
    assert shown["members_count"] == 2
    assert touches_groups(replica)
    assert not touches_groups(primary)
