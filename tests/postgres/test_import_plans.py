"""The re-import's lookups of known rows keep to plans that read only what they need,
whatever the planner's statistics say: right after a first import they still say no member
holds a fingerprint, and a plan through the partial index of imported members read the
whole club per row; a range lookup joined under its LIMIT read every later member."""

from __future__ import annotations

from collections.abc import Callable
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.db import connection

from loyalty.models import Club
from members.imports import database
from members.models import Member

pytestmark = pytest.mark.django_db

MEMBERS = 2000


def test_known_rows_are_looked_up_through_the_identifier_indexes_on_stale_statistics(
    club: Club, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "members.csv"
    path.write_text(
        "email,msisdn\n" + "".join(f"p{n}@example.com,{4740000000 + n}\n" for n in range(MEMBERS))
    )
    call_command("import_members", club.slug, str(path), stdout=StringIO())
    # Statistics taken while no member held a fingerprint, as after a first import.
    Member.objects.filter(club=club).update(import_fingerprint=None)
    with connection.cursor() as cursor:
        cursor.execute(f"ANALYZE {Member._meta.db_table}")
    call_command("import_members", club.slug, str(path), stdout=StringIO())
    assert Member.objects.filter(club=club, import_fingerprint__isnull=False).count() == MEMBERS

    plans: list[str] = []
    real_known = database.known

    def explained(club: Club, keyed: list[Any], after: int | None = None) -> Any:
        def explain(execute: Callable[..., Any], sql: str, params: Any, *args: Any) -> Any:
            if sql.lstrip().startswith("SELECT k.fp"):
                with connection.cursor() as cursor:
                    cursor.execute(f"EXPLAIN {sql}", params)
                    plans.append("\n".join(row[0] for row in cursor.fetchall()))
            return execute(sql, params, *args)

        with connection.execute_wrapper(explain):
            return real_known(club, keyed, after)

    monkeypatch.setattr(database, "known", explained)
    out = StringIO()
    call_command("import_members", club.slug, str(path), stdout=out)

    assert f"unchanged {MEMBERS}" in out.getvalue().replace(",", "")
    assert plans
    for plan in plans:
        assert "member_club_email_uniq" in plan
        assert "member_club_imported_idx" not in plan


def test_the_range_lookup_limits_the_members_before_it_joins_those_seen(
    club: Club, tmp_path: Path
) -> None:
    # The join under the LIMIT let the planner hash every member after the batch: a
    # 1,000,000-row re-import took 86 s. Statistics that know nothing of the seen members.
    path = tmp_path / "members.csv"
    path.write_text(
        "email,msisdn\n" + "".join(f"p{n}@example.com,{4740000000 + n}\n" for n in range(MEMBERS))
    )
    call_command("import_members", club.slug, str(path), stdout=StringIO())
    plans: list[list[str]] = []

    def explain(execute: Callable[..., Any], sql: str, params: Any, *args: Any) -> Any:
        if sql.startswith("SELECT m.id, m.import_fingerprint"):
            with connection.cursor() as cursor:
                cursor.execute(f"EXPLAIN {sql}", params)
                plans.append([row[0] for row in cursor.fetchall()])
        return execute(sql, params, *args)

    out = StringIO()
    with connection.execute_wrapper(explain):
        call_command("import_members", club.slug, str(path), "--batch-size", "500", stdout=out)

    assert f"unchanged {MEMBERS}" in out.getvalue().replace(",", "")
    assert len(plans) == MEMBERS // 500 - 1
    for plan in plans:
        join = next(i for i, line in enumerate(plan) if "Join" in line or "Nested Loop" in line)
        limit = next(i for i, line in enumerate(plan) if "Limit" in line)
        # The Limit is inside the join: indented deeper, below it.
        assert limit > join, "\n".join(plan)
        assert len(plan[limit]) - len(plan[limit].lstrip()) > len(plan[join]) - len(
            plan[join].lstrip()
        ), "\n".join(plan)
