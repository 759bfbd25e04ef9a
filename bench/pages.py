"""Issue 19: pages of a group's members sorted by a member field, and pages at a moment
(``members?at=``), for groups of 1,000, 100,000 and 1,000,000 members of the bench club,
each through the whole HTTP stack beside the best of the hand-written plans.

Run by ``python -m bench --only pages``, in ``manage.py shell`` against the bench database.
The groups "pages bench 1000" and "pages bench 100000" are built once with set-based SQL
(their members spread over the club's ids, each joined at its ``created_at``, a third of
them also left and joined again later) and reused; the 1,000,000 is "All members".
"""

from __future__ import annotations

import statistics
import time
import warnings
from collections.abc import Callable
from datetime import UTC
from typing import Any

import psycopg
from django.db import connection, transaction
from django.db.models import Max, Min
from django.test import Client

from bench.dataset import BENCH_DATABASE_URL, CLUB_SLUG
from bench.harness import report
from bench.ledger import FLOOR_COUNT_AT, FLOOR_PAGE_AT, api_get
from groups import services
from groups.models import ALL_MEMBERS_KEY, MembersGroup, Membership, MembershipEvent
from loyalty.models import ApiToken, Club
from loyalty.permits import ALL_PERMITS
from loyalty.services import create_api_token
from members.models import Member

PER_PAGE = 100
SIZES = (1_000, 100_000)

# Every (club size / size)-th member by id; each joined at its created_at, and every third
# also left a day later and joined again two days later (three events).
FILL_EVENTS = """
INSERT INTO groups_membershipevent
    (club_id, group_id, member_id, kind, source, actor, created_at)
SELECT %(club)s, %(group)s, p.id, CASE WHEN k = 1 THEN 'left' ELSE 'joined' END, 'import',
    'bench', p.created_at + k * interval '1 day'
FROM (
    SELECT id, created_at, row_number() OVER (ORDER BY id) AS r FROM members_member
    WHERE club_id = %(club)s AND id %% %(step)s = 0 ORDER BY id LIMIT %(size)s
) p
CROSS JOIN LATERAL generate_series(0, CASE WHEN p.r %% 3 = 0 THEN 2 ELSE 0 END) k
ORDER BY 7, 3
"""
FILL_MEMBERSHIPS = """
INSERT INTO groups_membership (club_id, group_id, member_id, joined_at)
SELECT club_id, group_id, member_id, max(created_at) FROM groups_membershipevent
WHERE club_id = %(club)s AND group_id = %(group)s
GROUP BY club_id, group_id, member_id ORDER BY member_id
"""

# The two plans of a sorted page: sort the group's members, or walk the club's members
# in the order of the field and probe each for membership.
SORT_GROUP = """
SELECT m.* FROM (
    SELECT member_id FROM groups_membership WHERE club_id = %(club)s AND group_id = %(group)s
    OFFSET 0
) s JOIN members_member m ON m.club_id = %(club)s AND m.id = s.member_id
ORDER BY {order} LIMIT {per_page} OFFSET %(offset)s
"""
WALK_CLUB = """
SELECT m.* FROM members_member m WHERE m.club_id = %(club)s AND EXISTS (
    SELECT 1 FROM groups_membership s
    WHERE s.club_id = %(club)s AND s.group_id = %(group)s AND s.member_id = m.id
) {valued} ORDER BY {order} LIMIT {per_page} OFFSET %(offset)s
"""
ID_PAGE = f"""
SELECT m.* FROM (
    SELECT member_id FROM groups_membership WHERE club_id = %(club)s AND group_id = %(group)s
    ORDER BY member_id LIMIT {PER_PAGE}
) p JOIN members_member m ON m.club_id = %(club)s AND m.id = p.member_id ORDER BY m.id
"""
# Every member of the bench club has an email and an msisdn: walked on their unique
# indexes, which hold only the members that have one (the plans must agree, checked below).
NULLABLE = ("email", "msisdn")


def ensure_group(club: Club, size: int, members: int) -> MembersGroup:
    name = f"pages bench {size}"
    group = MembersGroup.objects.filter(club=club, name=name).order_by("pk").first()
    if group is None:
        group = services.create_group(club=club, name=name)
    memberships = Membership.objects.filter(club_id=club.pk, group_id=group.pk)
    if group.members_count == size and memberships.count() == size:
        return group
    params = {"club": club.pk, "group": group.pk, "step": members // size, "size": size}
    with transaction.atomic(), connection.cursor() as cursor:
        memberships.delete()
        MembershipEvent.objects.filter(club_id=club.pk, group_id=group.pk).delete()
        cursor.execute(FILL_EVENTS, params)
        cursor.execute(FILL_MEMBERSHIPS, params)
        MembersGroup.objects.filter(pk=group.pk).update(members_count=memberships.count())
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE groups_membershipevent")
        cursor.execute("ANALYZE groups_membership")
    group.refresh_from_db()
    return group


def median_of(work: Callable[[], Any], runs: int) -> tuple[float, Any]:
    times, result = [], None
    for _ in range(runs):
        started = time.perf_counter()
        result = work()
        times.append(time.perf_counter() - started)
    return statistics.median(times), result


def order_sql(field: str, descending: bool, *, walk: bool = False) -> str:
    direction = "DESC" if descending else "ASC"
    nulls = " NULLS LAST" if field in NULLABLE and not walk else ""
    return f"m.{field} {direction}{nulls}, m.id ASC"


def plan_sql(plan: str, field: str, descending: bool) -> str:
    if plan == "sort group":
        return SORT_GROUP.format(order=order_sql(field, descending), per_page=PER_PAGE)
    return WALK_CLUB.format(
        valued=f"AND m.{field} IS NOT NULL" if field in NULLABLE else "",
        order=order_sql(field, descending, walk=True),
        per_page=PER_PAGE,
    )


def sorted_pages(
    client: Client, token: str, conn: psycopg.Connection, group: MembersGroup, runs: int
) -> None:
    params_base = {"club": group.club_id, "group": group.pk}
    for field, descending, page_no in (
        ("email", False, 1),
        ("email", True, 1),
        ("msisdn", False, 1),
        ("created_at", False, 1),
        ("updated_at", True, 1),
        ("email", False, 10),
    ):
        params = {**params_base, "offset": (page_no - 1) * PER_PAGE}
        plans = {}
        for plan in ("sort group", "walk club"):
            text = plan_sql(plan, field, descending)
            plans[plan] = median_of(
                lambda text=text, params=params: [
                    row[0] for row in conn.execute(text, params).fetchall()
                ],
                runs,
            )
        best = min(plans, key=lambda plan: plans[plan][0])
        floor_s, floor_ids = plans[best]
        assert all(ids == floor_ids for _s, ids in plans.values()), "the plans differ"
        query = {
            "per_page": PER_PAGE,
            "page_no": page_no,
            "sort_by[]": field,
            "sort_directions[]": "desc" if descending else "asc",
        }
        path = f"members_groups/{group.pk}/members"
        api_s, body = median_of(
            lambda path=path, query=query: api_get(client, token, path, query), runs
        )
        assert [member["id"] for member in body["members"]] == floor_ids, (field, descending)
        direction = "desc" if descending else "asc"
        report(f"  by {field} {direction}, page {page_no}", api_s, f"raw SQL ({best})", floor_s)
        others = ", ".join(f"{plan} {s * 1000:.1f} ms" for plan, (s, _ids) in plans.items())
        print(f"      raw plans: {others}")


def id_page(
    client: Client, token: str, conn: psycopg.Connection, group: MembersGroup, runs: int
) -> None:
    """The first page by id, beside its raw SQL: the same request path, for reference."""
    params = {"club": group.club_id, "group": group.pk}
    floor_s, floor_ids = median_of(
        lambda: [row[0] for row in conn.execute(ID_PAGE, params).fetchall()], runs
    )
    path = f"members_groups/{group.pk}/members"
    query = {"per_page": PER_PAGE}
    api_s, body = median_of(lambda: api_get(client, token, path, query), runs)
    assert [member["id"] for member in body["members"]] == floor_ids
    report("  by id (reference), page 1", api_s, "raw SQL (membership index)", floor_s)


def club_list_sorted(
    client: Client, token: str, conn: psycopg.Connection, group: MembersGroup, runs: int
) -> None:
    """The club's members list filtered to the group, sorted by email: page 1."""
    params = {"club": group.club_id, "group": group.pk, "offset": 0}
    count = (
        "SELECT count(*) FROM groups_membership WHERE club_id = %(club)s AND group_id = %(group)s"
    )
    plans = {}
    for plan in ("sort group", "walk club"):
        text = plan_sql(plan, "email", False)

        def both(text: str = text) -> list[int]:
            conn.execute(count, params).fetchone()
            return [row[0] for row in conn.execute(text, params).fetchall()]

        plans[plan] = median_of(both, runs)
    best = min(plans, key=lambda plan: plans[plan][0])
    query = {"per_page": PER_PAGE, "members_group_ids[]": group.pk, "sort_by[]": "email"}
    api_s, body = median_of(lambda: api_get(client, token, "members", query), runs)
    assert [member["id"] for member in body["members"]] == plans[best][1]
    report("  members?members_group_ids[]= by email", api_s, f"count + {best}", plans[best][0])


def club_list(client: Client, token: str, conn: psycopg.Connection, club: Club, runs: int) -> None:
    """The club's members list (no filter) sorted by email, descending: page 1."""
    sql = (
        "SELECT m.* FROM members_member m WHERE m.club_id = %(club)s AND m.email IS NOT NULL "
        f"ORDER BY m.email DESC LIMIT {PER_PAGE}"
    )
    floor_s, floor_ids = median_of(
        lambda: [row[0] for row in conn.execute(sql, {"club": club.pk}).fetchall()], runs
    )
    query = {"per_page": PER_PAGE, "sort_by[]": "email", "sort_directions[]": "desc"}
    api_s, body = median_of(lambda: api_get(client, token, "members", query), runs)
    assert [member["id"] for member in body["members"]] == floor_ids
    report("  members? by email desc, page 1", api_s, "raw SQL (walk club)", floor_s)


def pages_at(
    client: Client, token: str, conn: psycopg.Connection, group: MembersGroup, runs: int
) -> None:
    events = MembershipEvent.objects.filter(club_id=group.club_id, group_id=group.pk)
    first, last = events.aggregate(first=Min("created_at"), last=Max("created_at")).values()
    middle = (first + (last - first) / 2).astimezone(UTC).replace(microsecond=0)
    for name, at in (("mid-history", middle), ("last event", last.astimezone(UTC))):
        params = {"club": group.club_id, "group": group.pk, "at": at}

        def floor(params: dict[str, Any] = params) -> tuple[int, list[int]]:
            count = conn.execute(FLOOR_COUNT_AT, params).fetchone()[0]
            return count, [row[0] for row in conn.execute(FLOOR_PAGE_AT, params).fetchall()]

        floor_s, (count, ids) = median_of(floor, runs)
        query = {"per_page": PER_PAGE, "at": at.isoformat()}
        path = f"members_groups/{group.pk}/members"
        api_s, body = median_of(
            lambda path=path, query=query: api_get(client, token, path, query), runs
        )
        assert body["pagination_info"]["total_count"] == count
        assert [member["id"] for member in body["members"]] == ids
        report(f"  at= {name} ({count:,}), page 1", api_s, "raw SQL floor (count+page)", floor_s)


def main(club_slug: str = CLUB_SLUG, runs: int = 5) -> None:
    warnings.filterwarnings("ignore", message="No directory at")
    club = Club.objects.get(slug=club_slug)
    members = Member.objects.filter(club=club).count()
    groups = [ensure_group(club, size, members) for size in SIZES]
    groups.append(MembersGroup.objects.get(club=club, system_key=ALL_MEMBERS_KEY))
    _token, raw = create_api_token(club=club, name="pages bench", permits=ALL_PERMITS)
    conn = psycopg.connect(BENCH_DATABASE_URL, autocommit=True)
    events = MembershipEvent.objects.filter(club_id=club.pk).count()
    print(
        f"PostgreSQL jit = {conn.execute('SHOW jit').fetchone()[0]}; club {club.slug}: "
        f"{members:,} members, {events:,} membership events (median of {runs})"
    )
    try:
        client = Client()
        print(f"\nThe members list of {club.slug} ({members:,} members)")
        club_list(client, raw, conn, club, runs)
        for group in groups:
            print(f"\n{group} ({group.members_count:,} members), pages of {PER_PAGE}")
            id_page(client, raw, conn, group, runs)
            sorted_pages(client, raw, conn, group, runs)
            club_list_sorted(client, raw, conn, group, runs)
            pages_at(client, raw, conn, group, runs)
    finally:
        ApiToken.objects.filter(club=club, name="pages bench").delete()
        conn.close()
