"""Reads of API lists and shows go to the replica; writes, and every read of a write
request, go to the primary. In the PostgreSQL and SQLite passes the replica is a second
alias of the same database, so the routing is what is tested; ``make test``'s replica pass
runs the same tests against a real streaming replica (see also tests/replica)."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest
from django.contrib.sessions.models import Session
from django.db import DEFAULT_DB_ALIAS, connections, router, transaction
from django.http import HttpRequest, HttpResponse
from django.test import RequestFactory
from django.test.utils import CaptureQueriesContext

from groups.models import MembersGroup
from loyalty.db_routing import REPLICA, ReplicaReadsMiddleware
from loyalty.models import Club
from members.models import Member
from tests.api_fixtures import ClubClient
from tests.factories import MemberFactory
from tests.helpers import wait_for_replica

PROJECT_TABLE = re.compile(r'^SELECT .* FROM "(loyalty|members|audiences|groups)_')
pytestmark = pytest.mark.django_db(transaction=True, databases=[DEFAULT_DB_ALIAS, REPLICA])


@pytest.fixture
def replica(settings: Any) -> None:
    """The router, as DATABASE_REPLICA_URL sets it; ``replica`` is the test database's
    mirror alias, or the real replica in the replica pass (tests/conftest.py), there caught up
    with the writes of earlier tests."""
    settings.DATABASE_ROUTERS = ["loyalty.db_routing.ReplicaRouter"]
    wait_for_replica()


def queries_by_alias(send: Callable[[], Any]) -> tuple[Any, list[str], list[str]]:
    with (
        CaptureQueriesContext(connections[DEFAULT_DB_ALIAS]) as primary,
        CaptureQueriesContext(connections[REPLICA]) as replica,
    ):
        response = send()
    return response, [q["sql"] for q in primary], [q["sql"] for q in replica]


def test_a_list_and_a_show_read_from_the_replica(
    replica: None, club: Club, make_client: Callable[..., ClubClient]
) -> None:
    api = make_client(club)
    member = MemberFactory(club=club)
    wait_for_replica()

    for path in ("members_groups", f"members/{member.pk}", "members"):
        response, primary, on_replica = queries_by_alias(lambda p=path: api.get(p))

        assert response.status_code == 200, path
        assert any("members" in sql for sql in on_replica), path
        # Only the token is read on the primary, so that a revocation takes effect at once.
        assert [sql for sql in primary if PROJECT_TABLE.search(sql)] == [
            sql for sql in primary if 'FROM "loyalty_apitoken"' in sql
        ], path
        assert any('FROM "loyalty_apitoken"' in sql for sql in primary), path
        assert not [sql for sql in on_replica if "loyalty_apitoken" in sql], path


def test_a_write_request_reads_and_writes_on_the_primary_only(
    replica: None, club: Club, make_client: Callable[..., ClubClient]
) -> None:
    api = make_client(club)
    MemberFactory(club=club, email="ann@example.com")
    group = api.post("members_groups", {"name": "Red"}, format="json").json()
    wait_for_replica()

    response, primary, on_replica = queries_by_alias(
        lambda: api.post(
            f"members_groups/{group['id']}/members",
            {"identifier_type": "email", "identifiers": ["ann@example.com"]},
            format="json",
        )
    )

    assert response.status_code == 200
    assert on_replica == []
    assert any(sql.lstrip().upper().startswith("SELECT") for sql in primary)
    assert MembersGroup.objects.get(pk=group["id"]).members_count == 1


def test_reads_in_a_transaction_or_outside_the_api_stay_on_the_primary(replica: None) -> None:
    seen: dict[str, str] = {}

    def view(request: HttpRequest) -> HttpResponse:
        seen["outside"] = router.db_for_read(Member)
        with transaction.atomic():
            seen["inside"] = router.db_for_read(Member)
        seen["django"] = router.db_for_read(Session)
        return HttpResponse()

    middleware = ReplicaReadsMiddleware(view)
    middleware(RequestFactory().get("/v3/red-club/members"))
    assert seen == {"outside": REPLICA, "inside": DEFAULT_DB_ALIAS, "django": DEFAULT_DB_ALIAS}

    for request in (
        RequestFactory().post("/v3/red-club/members"),
        RequestFactory().get("/admin/members/member/"),
    ):
        middleware(request)
        assert seen["outside"] == DEFAULT_DB_ALIAS
