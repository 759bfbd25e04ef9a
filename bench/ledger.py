"""Issue 8: the membership ledger at scale. Point-in-time members of a group of 500,000 with
2,000,000 events and its 90-day daily stats, through the HTTP API, each beside the raw-SQL
floor and the 2-second target; the export of 1,000,000 members beside PostgreSQL's own
``COPY ... TO STDOUT`` of the same rows and the 50% target.

Run by ``python -m bench --only ledger``, in ``manage.py shell`` against the bench database.
The group "ledger bench" of the club ``bench`` is built once with set-based SQL and reused.
"""

from __future__ import annotations

import io
import os
import statistics
import sys
import time
import warnings
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import psycopg
from django.core.management import call_command
from django.db import connection, transaction
from django.db.models import Max, Min
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from bench.dataset import BENCH_DATABASE_URL, CLUB_SLUG
from bench.harness import report
from groups import services
from groups.exports import group_members_csv
from groups.models import ALL_MEMBERS_KEY, MembersGroup, Membership, MembershipEvent
from loyalty.models import ApiToken, Club
from loyalty.permits import ALL_PERMITS
from loyalty.services import create_api_token
from members.models import Member

GROUP_NAME = "ledger bench"
HISTORY_DAYS = 120
STATS_DAYS = 90
PER_PAGE = 100
TARGET_SECONDS = 2.0
EXPORT_TARGET = 0.5

# The club's members by id, dealt in turn into four bands: one join (in); join, leave,
# join (in); join, leave, join, leave (out); no event. So half the club is in the group,
# with two events per member of the club; each member's events alternate, starting with a
# join, at times spread evenly over the history and shifted by a hash of its id.
FILL_EVENTS = """
INSERT INTO groups_membershipevent
    (club_id, group_id, member_id, kind, source, actor, created_at)
SELECT %(club)s, %(group)s, p.id,
    CASE WHEN k %% 2 = 0 THEN 'joined' ELSE 'left' END, 'import', 'bench',
    %(start)s + %(span)s * ((k + p.u) / p.n)
FROM (
    SELECT id, u, (ARRAY[1, 3, 4, 0])[(r %% 4)::int + 1] AS n FROM (
        SELECT id, row_number() OVER (ORDER BY id) - 1 AS r,
            ((id * 2654435761) %% 1000003)::float8 / 1000003 AS u
        FROM members_member WHERE club_id = %(club)s
    ) ranked
) p
CROSS JOIN LATERAL generate_series(0, p.n - 1) k
ORDER BY 7, 3
"""

# The replay of the events: a member is in the group when it has an odd number of them,
# since its last join.
FILL_MEMBERSHIPS = """
INSERT INTO groups_membership (club_id, group_id, member_id, joined_at)
SELECT club_id, group_id, member_id, max(created_at) FROM groups_membershipevent
WHERE club_id = %(club)s AND group_id = %(group)s
GROUP BY club_id, group_id, member_id HAVING count(*) %% 2 = 1
ORDER BY member_id
"""

# Checks of a freshly built history: each member's events alternate, starting with a join,
# and the members whose latest event is a join are exactly the membership rows.
CHECK_ALTERNATION = """
SELECT count(*) FROM (
    SELECT kind, lag(kind) OVER (PARTITION BY member_id ORDER BY created_at, id) AS before
    FROM groups_membershipevent WHERE club_id = %(club)s AND group_id = %(group)s
) e WHERE kind = before OR (before IS NULL AND kind = 'left')
"""
CHECK_REPLAY = """
SELECT count(*) FROM (
    SELECT member_id FROM groups_membership WHERE club_id = %(club)s AND group_id = %(group)s
) s FULL JOIN (
    SELECT member_id FROM (
        SELECT DISTINCT ON (member_id) member_id, kind FROM groups_membershipevent
        WHERE club_id = %(club)s AND group_id = %(group)s
        ORDER BY member_id, created_at DESC, id DESC
    ) latest WHERE kind = 'joined'
) r USING (member_id) WHERE s.member_id IS NULL OR r.member_id IS NULL
"""

# The members at a moment, by hand. Joins and leaves alternate, starting with a join, so
# a member was in when it had an odd number of events by then, and the members then number
# the joins less the leaves.
FLOOR_COUNT_AT = """
SELECT count(*) FILTER (WHERE kind = 'joined') - count(*) FILTER (WHERE kind = 'left')
FROM groups_membershipevent
WHERE club_id = %(club)s AND group_id = %(group)s AND created_at <= %(at)s
"""
FLOOR_PAGE_AT = f"""
SELECT m.* FROM (
    SELECT member_id FROM groups_membershipevent
    WHERE club_id = %(club)s AND group_id = %(group)s AND created_at <= %(at)s
    GROUP BY member_id HAVING count(*) %% 2 = 1 ORDER BY member_id LIMIT {PER_PAGE}
) p JOIN members_member m ON m.club_id = %(club)s AND m.id = p.member_id ORDER BY m.id
"""
# The same without relying on the alternation: each member's latest event, kept if a join.
REPLAY_LATEST = """
SELECT DISTINCT ON (member_id) member_id, kind FROM groups_membershipevent
WHERE club_id = %(club)s AND group_id = %(group)s AND created_at <= %(at)s
ORDER BY member_id, created_at DESC, id DESC
"""
REPLAY_COUNT_AT = f"SELECT count(*) FROM ({REPLAY_LATEST}) latest WHERE kind = 'joined'"
REPLAY_PAGE_AT = f"""
SELECT m.* FROM (
    SELECT member_id FROM ({REPLAY_LATEST}) latest WHERE kind = 'joined'
    ORDER BY member_id LIMIT {PER_PAGE}
) p JOIN members_member m ON m.club_id = %(club)s AND m.id = p.member_id ORDER BY m.id
"""

FLOOR_STATS = """
SELECT (created_at AT TIME ZONE %(tz)s)::date AS day,
    count(*) FILTER (WHERE kind = 'joined'), count(*) FILTER (WHERE kind = 'left')
FROM groups_membershipevent
WHERE club_id = %(club)s AND group_id = %(group)s AND created_at >= %(since)s
GROUP BY 1 ORDER BY 1
"""
FLOOR_SIZE = "SELECT members_count FROM groups_membersgroup WHERE id = %(group)s"

FLOOR_EXPORT = """
COPY (
    SELECT m.id, m.email, m.msisdn,
        to_char(s.joined_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'), m.properties
    FROM groups_membership s JOIN members_member m ON m.club_id = s.club_id AND m.id = s.member_id
    WHERE s.club_id = %(club)s AND s.group_id = %(group)s ORDER BY s.member_id
) TO STDOUT WITH (FORMAT csv)
"""


def ensure_group(club: Club) -> MembersGroup:
    """The manual group "ledger bench": half the club in it, two events per club member."""
    members = Member.objects.filter(club=club).count()
    group = MembersGroup.objects.filter(club=club, name=GROUP_NAME).order_by("pk").first()
    if group is None:
        group = services.create_group(club=club, name=GROUP_NAME)
    events = MembershipEvent.objects.filter(club_id=club.pk, group_id=group.pk)
    memberships = Membership.objects.filter(club_id=club.pk, group_id=group.pk)
    wanted_in, wanted_events = members // 2, 2 * members
    if (
        group.members_count == wanted_in
        and memberships.count() == wanted_in
        and events.count() == wanted_events
    ):
        return group
    started = time.perf_counter()
    end = timezone.now().replace(microsecond=0)
    params = {
        "club": club.pk,
        "group": group.pk,
        "start": end - timedelta(days=HISTORY_DAYS),
        "span": timedelta(days=HISTORY_DAYS),
    }
    with transaction.atomic(), connection.cursor() as cursor:
        memberships.delete()
        events.delete()
        cursor.execute(FILL_EVENTS, params)
        cursor.execute(FILL_MEMBERSHIPS, params)
        MembersGroup.objects.filter(pk=group.pk).update(members_count=memberships.count())
    with connection.cursor() as cursor:
        # Autovacuum may be off: the planner must know the new rows.
        cursor.execute("ANALYZE groups_membershipevent")
        cursor.execute("ANALYZE groups_membership")
        for check in (CHECK_ALTERNATION, CHECK_REPLAY):
            cursor.execute(check, params)
            assert cursor.fetchone()[0] == 0, check
    group.refresh_from_db()
    print(
        f"built {GROUP_NAME!r}: {events.count():,} events, {group.members_count:,} members "
        f"in {time.perf_counter() - started:.1f} s",
        flush=True,
    )
    return group


def median_parts(
    parts: dict[str, Callable[[], Any]], runs: int
) -> tuple[float, dict[str, float], dict[str, Any]]:
    """The median wall time of running ``parts`` in turn, each part's median, and results."""
    totals: list[float] = []
    each: dict[str, list[float]] = {name: [] for name in parts}
    results: dict[str, Any] = {}
    for _ in range(runs):
        for name, work in parts.items():
            started = time.perf_counter()
            results[name] = work()
            each[name].append(time.perf_counter() - started)
        totals.append(sum(times[-1] for times in each.values()))
    medians = {name: statistics.median(times) for name, times in each.items()}
    return statistics.median(totals), medians, results


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def api_get(client: Client, token: str, path: str, query: dict[str, Any]) -> Any:
    response = client.get(
        f"/v3/{CLUB_SLUG}/{path}",
        query,
        headers={
            "X-Client-Authorization": token,
            "X-User-Agent": "bench/1.0",
            "X-Product-Name": "members-groups-bench",
        },
    )
    assert response.status_code == 200, (path, response.status_code, response.content[:300])
    return response.json()


Baseline = tuple[str, float, dict[str, float]]


def measure_api(label: str, call: Callable[[], Any], baselines: list[Baseline], runs: int) -> Any:
    """Time ``call`` (a request through the whole stack) and print it beside each baseline:
    its name, its median time and the median times of its statements."""
    times = []
    for _ in range(runs):
        with CaptureQueriesContext(connection) as queries:
            started = time.perf_counter()
            body = call()
            times.append(time.perf_counter() - started)
    api_s = statistics.median(times)
    captured = queries.captured_queries
    slowest = max(captured, key=lambda q: float(q["time"]))
    sql_ms = sum(float(q["time"]) for q in captured) * 1000
    for index, (name, seconds, _parts) in enumerate(baselines):
        report(label if index == 0 else "", api_s, name, seconds)
    print(
        f"    API: {len(captured)} queries, {sql_ms:.0f} ms of SQL, the slowest "
        f"{float(slowest['time']) * 1000:.0f} ms; target {TARGET_SECONDS:.0f} s: "
        f"{verdict(api_s < TARGET_SECONDS)}"
    )
    for name, _seconds, parts in baselines:
        each = " + ".join(f"{part} {seconds * 1000:.0f} ms" for part, seconds in parts.items())
        print(f"    {name}: {each}")
    if os.environ.get("SHOW_SQL"):
        print("   ", slowest["sql"][:400])
    sys.stdout.flush()
    return body


def point_in_time(
    client: Client, token: str, conn: psycopg.Connection, group: MembersGroup, runs: int
) -> None:
    events = MembershipEvent.objects.filter(club_id=group.club_id, group_id=group.pk)
    first, last = events.aggregate(first=Min("created_at"), last=Max("created_at")).values()
    print(
        f"\nMembers at a moment of {group} ({group.members_count:,} members now, "
        f"{events.count():,} events over {(last - first).days} days): page 1 of "
        f"{PER_PAGE} and total_count (median of {runs})"
    )
    middle = (first + (last - first) / 2).astimezone(UTC).replace(microsecond=0)
    for name, at in (("mid-history", middle), ("last event", last.astimezone(UTC))):
        params = {"club": group.club_id, "group": group.pk, "at": at}

        def sql(count: str, page: str, params: dict[str, Any] = params) -> dict[str, Any]:
            return {
                "count": lambda: conn.execute(count, params).fetchone()[0],
                "page": lambda: [row[0] for row in conn.execute(page, params).fetchall()],
            }

        floor_s, floor_parts, floor = median_parts(sql(FLOOR_COUNT_AT, FLOOR_PAGE_AT), runs)
        replay_s, replay_parts, replay = median_parts(sql(REPLAY_COUNT_AT, REPLAY_PAGE_AT), runs)
        assert replay == floor, "the two hand-written answers differ"
        path = f"members_groups/{group.pk}/members"
        query = {"per_page": PER_PAGE, "at": at.isoformat()}
        body = measure_api(
            f"API members?at= {name} ({floor['count']:,})",
            lambda path=path, query=query: api_get(client, token, path, query),
            [
                ("raw SQL floor", floor_s, floor_parts),
                ("DISTINCT ON replay", replay_s, replay_parts),
            ],
            runs,
        )
        total = body["pagination_info"]["total_count"]
        assert total == floor["count"], (total, floor["count"])
        assert [member["id"] for member in body["members"]] == floor["page"]


def daily_stats(
    client: Client, token: str, conn: psycopg.Connection, group: MembersGroup, runs: int
) -> None:
    zone = ZoneInfo(group.club.timezone)
    # The days up to the last event, so that a history built weeks ago measures the same.
    last = MembershipEvent.objects.filter(club_id=group.club_id, group_id=group.pk).latest(
        "created_at"
    )
    until = last.created_at.astimezone(zone).date()
    since = until - timedelta(days=STATS_DAYS - 1)
    params = {
        "club": group.club_id,
        "group": group.pk,
        "tz": group.club.timezone,
        "since": datetime.combine(since, datetime.min.time(), tzinfo=zone),
    }
    floor_s, floor_parts, floor = median_parts(
        {
            "per day": lambda: conn.execute(FLOOR_STATS, params).fetchall(),
            "size": lambda: conn.execute(FLOOR_SIZE, params).fetchone()[0],
        },
        runs,
    )
    days = floor["per day"]
    size_at_start = floor["size"] - sum(joins - leaves for _day, joins, leaves in days)
    path = f"members_groups/{group.pk}/stats"
    query = {"since": since, "until": until, "interval": "day"}
    print(
        f"\nDaily stats of {group}, the {STATS_DAYS} days to {until} "
        f"({sum(j + lv for _d, j, lv in days):,} events; median of {runs})"
    )
    body = measure_api(
        f"API stats?interval=day, {STATS_DAYS} days",
        lambda: api_get(client, token, path, query),
        [("raw SQL floor", floor_s, floor_parts)],
        runs,
    )
    stats = body["stats"]
    assert len(stats) == STATS_DAYS
    assert stats[0]["size_at_start"] == size_at_start
    by_day = {str(day): (joins, leaves) for day, joins, leaves in days}
    assert all((i["joins"], i["leaves"]) == by_day.get(i["start"], (0, 0)) for i in stats), (
        "the stats differ from the floor"
    )


def export(conn: psycopg.Connection, club: Club, runs: int) -> None:
    group = MembersGroup.objects.get(club=club, system_key=ALL_MEMBERS_KEY)
    rows = group.members_count
    params = {"club": club.pk, "group": group.pk}

    def floor() -> int:
        lines = 0
        with conn.cursor() as cursor, cursor.copy(FLOOR_EXPORT, params) as copy:
            for chunk in copy:
                lines += bytes(chunk).count(b"\n")
        return lines

    def csv() -> int:
        return sum(chunk.count(b"\n") for chunk in group_members_csv(group)) - 1

    def command() -> str:
        out = io.StringIO()
        # Its progress bar goes to stderr: kept (it is part of the command's work), not shown.
        call_command(
            "export_group_members",
            club.slug,
            group.pk,
            "/dev/null",
            stdout=out,
            stderr=io.StringIO(),
        )
        return out.getvalue()

    # Interleaved run by run, so that a noisy neighbour weighs on all three alike.
    _total, medians, results = median_parts(
        {"floor": floor, "group_members_csv(), consumed": csv, "export_group_members": command},
        runs,
    )
    assert results["floor"] == results["group_members_csv(), consumed"] == rows, results
    assert f"Wrote {rows:,} members" in results["export_group_members"]
    floor_s = medians.pop("floor")
    print(f"\nExport of {group} ({rows:,} members) as CSV (median of {runs})")
    for label, seconds in medians.items():
        report(label, seconds, "COPY ... TO STDOUT (psycopg)", floor_s)
        share = floor_s / seconds
        print(
            f"    {rows / seconds:,.0f} rows/s vs {rows / floor_s:,.0f} rows/s: {share:.0%} of "
            f"COPY's rate; target {EXPORT_TARGET:.0%}: {verdict(share >= EXPORT_TARGET)}",
            flush=True,
        )


def main(club_slug: str = CLUB_SLUG, runs: int = 5) -> None:
    # WhiteNoise warns once that collectstatic has not run: no static file is asked for here.
    warnings.filterwarnings("ignore", message="No directory at")
    club = Club.objects.get(slug=club_slug)
    group = ensure_group(club)
    _token, raw = create_api_token(club=club, name="ledger bench", permits=ALL_PERMITS)
    conn = psycopg.connect(BENCH_DATABASE_URL, autocommit=True)
    jit = conn.execute("SHOW jit").fetchone()[0]
    members = Member.objects.filter(club=club).count()
    print(f"PostgreSQL jit = {jit}; club {club.slug}: {members:,} members")
    try:
        client = Client()
        point_in_time(client, raw, conn, group, runs)
        daily_stats(client, raw, conn, group, runs)
        export(conn, club, runs)
    finally:
        ApiToken.objects.filter(club=club, name="ledger bench").delete()
        conn.close()
