"""Through PgBouncer in transaction pooling (make test's pooled pass, DB_TRANSACTION_POOLING):
nothing the service does rests on a server session outliving its transaction."""

from __future__ import annotations

from typing import Any

import pytest
from django.db import connection

from loyalty.models import Club
from members.models import Member
from tests.api_fixtures import ClubClient
from tests.factories import MemberFactory

pytestmark = pytest.mark.django_db(transaction=True)


def server_setting(name: str) -> str:
    with connection.cursor() as cursor:
        cursor.execute(f"SHOW {name}")
        return str(cursor.fetchone()[0])


def test_the_connection_goes_through_the_pooler() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT inet_server_port()")
        (server_port,) = cursor.fetchone()

    # PgBouncer listens on a port of its own and passes the statements on to the server.
    assert int(connection.settings_dict["PORT"]) != server_port


def test_session_features_are_configured_off() -> None:
    assert connection.settings_dict["DISABLE_SERVER_SIDE_CURSORS"] is True
    connection.ensure_connection()
    assert connection.connection.prepare_threshold is None


def test_a_request_leaves_no_timeout_on_the_server_session(api: ClubClient, settings: Any) -> None:
    settings.DB_STATEMENT_TIMEOUT_MS = 1234
    settings.DB_LOCK_TIMEOUT_MS = 567

    assert api.get("members_groups").status_code == 200

    # A SET would stay on the server session, for whichever client gets it next.
    assert server_setting("statement_timeout") == "0"
    assert server_setting("lock_timeout") == "0"


def test_queries_run_many_times_and_iterated_querysets_work(club: Club) -> None:
    members = [MemberFactory(club=club) for _ in range(5)]

    # psycopg would prepare a statement run five times; PgBouncer 1.18 cannot pool it.
    for member in members * 3:
        assert Member.objects.get(pk=member.pk).club_id == club.pk
    # iterator() would use a server-side cursor held across transactions.
    assert [m.pk for m in Member.objects.filter(club=club).order_by("pk").iterator(2)] == [
        m.pk for m in members
    ]
