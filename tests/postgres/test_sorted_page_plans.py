"""Sorted pages of a large group, and of the members list, walk the club's index on the
field (backwards for a descending key) instead of sorting the group or the club: the plan
PostgreSQL picks for each page's query, read through the HTTP API."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.db import connection
from rest_framework.test import APIClient

from groups.models import MembersGroup
from loyalty.models import Club

pytestmark = pytest.mark.django_db

MEMBERS = 3000
# A statement ending in a LIMIT reads a page (an EXISTS probe's "LIMIT 1" is inside it).
PAGED = re.compile(r" LIMIT \d+( OFFSET \d+)?$")


@pytest.fixture
def big_club(club: Club, tmp_path: Path) -> Club:
    path = tmp_path / "members.csv"
    path.write_text(
        "email,msisdn\n" + "".join(f"p{n}@example.com,{4740000000 + n}\n" for n in range(MEMBERS))
    )
    call_command("import_members", club.slug, str(path), stdout=StringIO())
    with connection.cursor() as cursor:
        # Written by hand: an import stamps a batch's members with one time.
        cursor.execute(
            "UPDATE members_member SET created_at = now() - id * interval '1 minute', "
            "updated_at = now() - ((id * 7) %% 1000) * interval '1 minute' WHERE club_id = %s",
            [club.pk],
        )
        cursor.execute("ANALYZE members_member")
        cursor.execute("ANALYZE groups_membership")
    return club


@contextmanager
def page_plans() -> Iterator[list[str]]:
    """The plans of the statements that read a page in a sort order (with a LIMIT: the
    members list then fetches those rows by id)."""
    plans: list[str] = []

    def explain(execute: Callable[..., Any], sql: str, params: Any, *args: Any) -> Any:
        if sql.startswith("SELECT") and 'FROM "members_member"' in sql and PAGED.search(sql):
            with connection.cursor() as cursor:
                cursor.execute(f"EXPLAIN {sql}", params)
                plans.append("\n".join(row[0] for row in cursor.fetchall()))
        return execute(sql, params, *args)

    with connection.execute_wrapper(explain):
        yield plans


def page_plan(api: APIClient, url: str) -> str:
    """The plan of the one statement that reads the page of 10 members at ``url``."""
    with page_plans() as plans:
        response = api.get(url)
    assert response.status_code == 200
    assert len(response.json()["members"]) == 10
    assert len(plans) == 1, plans
    return plans[0]


@pytest.mark.parametrize(
    ("query", "index"),
    [
        ("sort_by[]=email", "Scan using member_club_email_uniq"),
        (
            "sort_by[]=email&sort_directions[]=desc",
            "Scan Backward using member_club_email_uniq",
        ),
        (
            "sort_by[]=msisdn&sort_directions[]=desc",
            "Scan Backward using member_club_msisdn_uniq",
        ),
        ("sort_by[]=created_at", "Scan using member_club_created_idx"),
        (
            "sort_by[]=updated_at&sort_directions[]=desc",
            "Scan Backward using member_club_updated_idx",
        ),
    ],
)
def test_sorted_pages_walk_the_fields_index(
    api: APIClient, big_club: Club, all_members: MembersGroup, query: str, index: str
) -> None:
    paths = (
        f"members_groups/{all_members.pk}/members?",
        "members?",
        # A filter by a group that is most of the club probes each member walked.
        f"members?members_group_ids[]={all_members.pk}&",
    )
    for path in paths:
        plan = page_plan(api, f"{path}{query}&per_page=10&page_no=2")
        assert index in plan, plan


@pytest.fixture
def small_group(api: APIClient, big_club: Club) -> MembersGroup:
    """30 of the club's 3,000 members, spread over its ids and times, whose statistics are
    stale: analyzed when the group held every member (a club's statistics lag its groups)."""
    response = api.post("members_groups", {"name": "Few"}, format="json")
    group = MembersGroup.objects.get(pk=response.json()["id"])
    path = f"members_groups/{group.pk}/members"
    emails = [f"p{n}@example.com" for n in range(MEMBERS)]
    body = {"identifier_type": "email", "identifiers": emails}
    assert api.post(path, body, format="json").status_code == 200
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE groups_membership")
    leaving = [email for n, email in enumerate(emails) if n % (MEMBERS // 30)]
    body = {"identifier_type": "email", "identifiers": leaving}
    assert api.delete(path, body, format="json").status_code == 200
    group.refresh_from_db()
    assert group.members_count == 30
    return group


@pytest.mark.parametrize(
    "query",
    [
        "sort_by[]=email",
        "sort_by[]=created_at",
        "sort_by[]=updated_at&sort_directions[]=desc",
        "sort_by[]=id",
    ],
)
def test_a_small_groups_pages_read_the_group_whole(
    api: APIClient, small_group: MembersGroup, query: str
) -> None:
    """Sorted, the group's page and the members list filtered by the group sort the group's
    30 members; by id (the list's default), the list does too. Planned from the stale
    statistics alone, each would walk the club's index on the field."""
    paths = [f"members?members_group_ids[]={small_group.pk}&"]
    if query != "sort_by[]=id":
        paths.append(f"members_groups/{small_group.pk}/members?")
    for path in paths:
        plan = page_plan(api, f"{path}{query}&per_page=10")
        # The group's members read first (an InitPlan), fetched by id, then sorted: no walk
        # of the club.
        assert "InitPlan" in plan, plan
        assert "members_member_pkey" in plan, plan
        assert "member_club_" not in plan, plan
