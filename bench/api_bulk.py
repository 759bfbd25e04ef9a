"""Issue 3: bulk add/remove of 100k members by email through the HTTP API, and group paging."""

from __future__ import annotations

import os
import random
import subprocess
import sys
from typing import Any

import psycopg

from bench.dataset import BENCH_DATABASE_URL, CLUB_SLUG, ROOT, email_of
from bench.harness import ApiClient, live_server, median_seconds, report, setup_django

FLOOR_ADD = """
WITH found AS (
    SELECT id FROM members_member WHERE club_id = %(club)s AND email = ANY(%(emails)s::text[])
), ins AS (
    INSERT INTO groups_membership (club_id, group_id, member_id, joined_at)
    SELECT %(club)s, %(group)s, id, now() FROM found ORDER BY id
    ON CONFLICT (club_id, group_id, member_id) DO NOTHING RETURNING member_id
), ev AS (
    INSERT INTO groups_membershipevent
        (club_id, group_id, member_id, kind, source, actor, created_at)
    SELECT %(club)s, %(group)s, member_id, 'joined', 'api', '', now() FROM ins
)
UPDATE groups_membersgroup SET members_count = members_count + (SELECT count(*) FROM ins)
WHERE id = %(group)s
"""

FLOOR_REMOVE = """
WITH found AS (
    SELECT id FROM members_member WHERE club_id = %(club)s AND email = ANY(%(emails)s::text[])
), del AS (
    DELETE FROM groups_membership
    WHERE club_id = %(club)s AND group_id = %(group)s AND member_id IN (SELECT id FROM found)
    RETURNING member_id
), ev AS (
    INSERT INTO groups_membershipevent
        (club_id, group_id, member_id, kind, source, actor, created_at)
    SELECT %(club)s, %(group)s, member_id, 'left', 'api', '', now() FROM del
)
UPDATE groups_membersgroup SET members_count = members_count - (SELECT count(*) FROM del)
WHERE id = %(group)s
"""

FLOOR_PAGE = """
SELECT m.* FROM (
    SELECT member_id FROM groups_membership
    WHERE club_id = %(club)s AND group_id = %(group)s {where}
    ORDER BY member_id LIMIT 100 {offset}
) p JOIN members_member m ON m.id = p.member_id ORDER BY m.id
"""


def make_token() -> str:
    env = {**os.environ, "DATABASE_URL": BENCH_DATABASE_URL}
    out = subprocess.run(
        [sys.executable, str(ROOT / "manage.py"), "create_api_token", CLUB_SLUG, "--name", "bench"],
        check=True,
        env=env,
        capture_output=True,
        text=True,
    ).stdout
    return out.strip().splitlines()[-1]


def naive_add(group_id: int, emails: list[str]) -> None:
    """What a first DRF version does: a serializer field and ORM round trips per identifier."""
    from rest_framework import serializers

    from groups.models import MembersGroup, Membership, MembershipEvent
    from members.models import Member

    group = MembersGroup.objects.get(pk=group_id)
    field = serializers.EmailField()
    for raw in emails:
        email = field.run_validation(raw).lower()
        member = Member.objects.filter(club_id=group.club_id, email=email).first()
        if member is None:
            continue
        _, created = Membership.objects.get_or_create(
            club_id=group.club_id, group=group, member=member
        )
        if created:
            MembershipEvent.objects.create(
                club_id=group.club_id,
                group_id=group.pk,
                member_id=member.pk,
                kind="joined",
                source="api",
            )
    group.members_count = group.memberships.count()
    group.save(update_fields=["members_count"])


def naive_remove(group_id: int, emails: list[str]) -> None:
    from rest_framework import serializers

    from groups.models import MembersGroup, Membership, MembershipEvent
    from members.models import Member

    group = MembersGroup.objects.get(pk=group_id)
    field = serializers.EmailField()
    for raw in emails:
        email = field.run_validation(raw).lower()
        member = Member.objects.filter(club_id=group.club_id, email=email).first()
        if member is None:
            continue
        deleted, _ = Membership.objects.filter(
            club_id=group.club_id, group=group, member=member
        ).delete()
        if deleted:
            MembershipEvent.objects.create(
                club_id=group.club_id,
                group_id=group.pk,
                member_id=member.pk,
                kind="left",
                source="api",
            )
    group.members_count = group.memberships.count()
    group.save(update_fields=["members_count"])


def run(club_id: int, members: int, identifiers: int, naive_sample: int, runs: int) -> None:
    setup_django()
    rng = random.Random(11)
    emails = [email_of(n) for n in rng.sample(range(1, members + 1), identifiers)]
    token = make_token()
    conn = psycopg.connect(BENCH_DATABASE_URL, autocommit=True)
    print(f"PostgreSQL jit = {conn.execute('SHOW jit').fetchone()[0]}", flush=True)

    with live_server() as base:
        api = ApiClient(base, CLUB_SLUG, token)
        api_group = api.call("POST", "members_groups", {"name": "bench api"})["id"]
        floor_group = api.call("POST", "members_groups", {"name": "bench floor"})["id"]
        naive_group = api.call("POST", "members_groups", {"name": "bench naive"})["id"]
        payload = {"identifier_type": "email", "identifiers": emails}

        def api_add() -> None:
            result: Any = api.call("POST", f"members_groups/{api_group}/members", payload)
            assert result["added"] == identifiers, result["added"]

        def api_remove() -> None:
            result: Any = api.call("DELETE", f"members_groups/{api_group}/members", payload)
            assert result["removed"] == identifiers, result["removed"]

        def floor(sql: str, group: int) -> None:
            conn.execute(sql, {"club": club_id, "group": group, "emails": emails})

        add_times, remove_times, floor_add, floor_remove = [], [], [], []
        for _ in range(runs):
            add_times.append(median_seconds(api_add, runs=1))
            remove_times.append(median_seconds(api_remove, runs=1))
            floor_add.append(median_seconds(lambda: floor(FLOOR_ADD, floor_group), runs=1))
            floor_remove.append(median_seconds(lambda: floor(FLOOR_REMOVE, floor_group), runs=1))
        sample = emails[:naive_sample]
        scale = identifiers / naive_sample
        naive_add_s = median_seconds(lambda: naive_add(naive_group, sample), runs=1) * scale
        naive_remove_s = median_seconds(lambda: naive_remove(naive_group, sample), runs=1) * scale

        def med(values: list[float]) -> float:
            return sorted(values)[len(values) // 2]

        print(
            f"\nBulk by email, {identifiers:,} identifiers, club of {members:,} (median of {runs})"
        )
        report("API add (HTTP, end to end)", med(add_times), "raw SQL floor", med(floor_add))
        report(
            "API remove (HTTP, end to end)", med(remove_times), "raw SQL floor", med(floor_remove)
        )
        report(f"naive DRF add ({naive_sample:,} scaled)", naive_add_s, "API add", med(add_times))
        report(
            f"naive DRF remove ({naive_sample:,} scaled)",
            naive_remove_s,
            "API remove",
            med(remove_times),
        )

        all_members = api.call("GET", "members_groups?system=true")["members_groups"][0]
        group = all_members["id"]
        depth = all_members["members_count"] // 100
        after = conn.execute(
            "SELECT member_id FROM groups_membership WHERE group_id = %s ORDER BY member_id "
            "OFFSET %s LIMIT 1",
            [group, (depth - 1) * 100 - 1],
        ).fetchone()[0]
        print(
            f"\nA page of 100 members of a group of {all_members['members_count']:,} (median of 5)"
        )
        for label, query, sql, params in (
            ("page_no=1", "page_no=1", FLOOR_PAGE.format(where="", offset=""), {}),
            (
                f"page_no={depth}",
                f"page_no={depth}",
                FLOOR_PAGE.format(where="", offset="OFFSET %(offset)s"),
                {"offset": (depth - 1) * 100},
            ),
            (
                f"after_id (page {depth})",
                f"after_id={after}",
                FLOOR_PAGE.format(where="AND member_id > %(after)s", offset=""),
                {"after": after},
            ),
        ):
            path = f"members_groups/{group}/members?per_page=100&{query}"
            api_s = median_seconds(lambda path=path: api.call("GET", path), runs=5)
            sql_s = median_seconds(
                lambda sql=sql, params=params: conn.execute(
                    sql, {"club": club_id, "group": group, **params}
                ).fetchall(),
                runs=5,
            )
            report(f"API list {label}", api_s, "raw SQL", sql_s)
