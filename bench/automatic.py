"""Issue 4: computing and re-computing a ~500k automatic group, and member updates with 100
automatic groups, each beside the hand-written SQL (or plain update) measured in the same run."""

from __future__ import annotations

import statistics
import time
from typing import Any

import psycopg

from bench.dataset import BENCH_DATABASE_URL
from bench.harness import report, setup_django

FLOOR_APPLY = """
WITH stale AS (
    DELETE FROM groups_membership ms
    WHERE ms.club_id = %(club)s AND ms.group_id = %(group)s AND NOT EXISTS (
        SELECT 1 FROM members_member m
        WHERE m.id = ms.member_id AND (m.properties ->> 'points')::int < %(limit)s
    )
    RETURNING member_id
), fresh AS (
    INSERT INTO groups_membership (club_id, group_id, member_id, joined_at)
    SELECT %(club)s, %(group)s, m.id, now() FROM members_member m
    WHERE m.club_id = %(club)s AND (m.properties ->> 'points')::int < %(limit)s ORDER BY m.id
    ON CONFLICT (club_id, group_id, member_id) DO NOTHING RETURNING member_id
), events AS (
    INSERT INTO groups_membershipevent
        (club_id, group_id, member_id, kind, source, actor, created_at)
    SELECT %(club)s, %(group)s, member_id, 'left', 'rule', '', now() FROM stale
    UNION ALL
    SELECT %(club)s, %(group)s, member_id, 'joined', 'rule', '', now() FROM fresh
)
UPDATE groups_membersgroup SET members_count = members_count
    + (SELECT count(*) FROM fresh) - (SELECT count(*) FROM stale)
WHERE id = %(group)s
"""


def points_below(limit: int) -> list[dict[str, Any]]:
    return [
        {
            "condition_group": "member_properties",
            "type": "number",
            "field": "points",
            "operator": "lt",
            "value": limit,
        }
    ]


def run(club_id: int, members: int, groups: int, updates: int) -> None:
    setup_django()
    from django.conf import settings

    # Inline recomputation: measure the work itself, not a task queue.
    settings.RECOMPUTE_INLINE_MAX = 10**9
    from groups import services
    from groups.models import MembersGroup
    from loyalty.models import Club
    from loyalty.services import create_club
    from members import services as member_services
    from members.models import Member

    club = Club.objects.get(pk=club_id)
    MembersGroup.objects.filter(club=club, automatic=True, system=False).delete()
    conn = psycopg.connect(BENCH_DATABASE_URL, autocommit=True)
    floor_group = services.create_group(club=club, name="bench floor")

    started = time.perf_counter()
    group = services.create_group(
        club=club, name="bench half", audience_conditions=points_below(5000)
    )
    create_s = time.perf_counter() - started
    started = time.perf_counter()
    conn.execute(FLOOR_APPLY, {"club": club_id, "group": floor_group.pk, "limit": 5000})
    floor_create_s = time.perf_counter() - started

    started = time.perf_counter()
    services.update_group(group=group, audience_conditions=points_below(5500))
    update_s = time.perf_counter() - started
    started = time.perf_counter()
    conn.execute(FLOOR_APPLY, {"club": club_id, "group": floor_group.pk, "limit": 5500})
    floor_update_s = time.perf_counter() - started
    group.refresh_from_db()

    print(f"\nAutomatic group over a club of {members:,} members (PostgreSQL)")
    report(
        f"compute a group of {group.members_count:,}", create_s, "hand-written SQL", floor_create_s
    )
    report("re-compute after a rule moving ~50k", update_s, "hand-written SQL", floor_update_s)

    for n in range(groups):
        services.create_group(
            club=club,
            name=f"bench band {n}",
            audience_conditions=[
                {
                    "condition_group": "member_properties",
                    "type": "number",
                    "field": "points",
                    "operator": "between",
                    "value": [n * 100, n * 100 + 99],
                }
            ],
        )
    member = Member.objects.filter(club=club).order_by("pk").first()
    plain_club = Club.objects.filter(slug="bench-plain").first() or create_club(
        slug="bench-plain", name="No automatic groups"
    )
    plain = Member.objects.filter(club=plain_club).first() or member_services.create_member(
        club=plain_club, email="plain@bench.example", source="system"
    )

    def timed_updates(target: Any) -> float:
        times = []
        for i in range(updates):
            props = {**target.properties, "points": (i * 137) % 10_000}
            started = time.perf_counter()
            member_services.update_member(member=target, properties=props, source="api")
            times.append(time.perf_counter() - started)
        return statistics.median(times)

    with_groups = timed_updates(member)
    without = timed_updates(plain)
    print(f"\nUpdating one member's properties (median of {updates})")
    report(f"with {groups + 1} automatic groups", with_groups, "plain update, no groups", without)
