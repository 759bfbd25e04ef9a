"""Everything at once on PostgreSQL: the counts, rows, rules and history stay exact.

Threads, each with its own client and database connection, run bulk adds and removes on
the same manual groups, member creates, updates and deletes, imports and rule changes of
automatic groups (recomputed by the background task), all through the HTTP API. Then every
invariant of the service is checked on the committed data.
"""

from __future__ import annotations

import logging
import random
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest
from django.core.management import call_command
from django.db import connection, connections, transaction

from groups import services as group_services
from groups.models import EventKind, MembersGroup, Membership, MembershipEvent
from loyalty.models import Club
from loyalty.services import create_club
from members.models import ImportStatus, Member, MemberImport
from members.services import bulk_create_members
from tests.api_fixtures import ClubClient
from tests.helpers import cond, in_groups

MEMBERS = 400
MANUAL_GROUPS = 5
BULK_THREADS = 4
BULK_REQUESTS = 90  # per bulk thread
BULK_SIZE = 30  # identifiers per bulk request
MEMBER_WRITES = 240
IMPORTS = 24
IMPORT_SIZE = 50
RULE_CHANGES = 24
TIERS = ("gold", "silver", "bronze")


def email(n: int) -> str:
    return f"m{n}@conc.example"


class Ops:
    """What the threads did: operations run and every response's status."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.operations = 0
        self.statuses: Counter[int] = Counter()
        self.errors: list[str] = []

    def record(self, response: Any, operations: int) -> None:
        with self.lock:
            self.statuses[response.status_code] += 1
            self.operations += operations
            if response.status_code >= 500:
                self.errors.append(response.content.decode()[:300])


def run_in_thread(work: Callable[[], None], failures: list[BaseException]) -> threading.Thread:
    def target() -> None:
        try:
            work()
        except BaseException as exc:  # reported by the test, not lost in the thread
            failures.append(exc)
        finally:
            connections.close_all()

    return threading.Thread(target=target)


def deadlocks() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT deadlocks FROM pg_stat_database WHERE datname = current_database()")
        return int(cursor.fetchone()[0])


def setup_club() -> tuple[Club, list[int], list[int]]:
    club = create_club(slug="busy", name="Busy")
    bulk_create_members(
        club=club,
        members=[
            Member(
                email=email(n),
                properties={"tier": TIERS[n % 3], "points": n % 100},
            )
            for n in range(MEMBERS)
        ],
        source="system",
    )
    manual = [
        group_services.create_group(club=club, name=f"Manual {i}").pk for i in range(MANUAL_GROUPS)
    ]
    gold = group_services.create_group(
        club=club, name="Gold", audience_conditions=[cond("string", "tier", "eq", "gold")]
    )
    automatic = [
        gold.pk,
        group_services.create_group(
            club=club, name="Rich", audience_conditions=[cond("number", "points", "gte", 50)]
        ).pk,
        group_services.create_group(
            club=club,
            name="Gold in manual 0",
            audience_conditions=[in_groups(manual[0]), cond("string", "tier", "eq", "gold")],
        ).pk,
        group_services.create_group(
            club=club, name="Manual 1 or 2", audience_conditions=[in_groups(manual[1], manual[2])]
        ).pk,
        group_services.create_group(
            club=club,
            name="Poor gold",
            audience_conditions=[in_groups(gold.pk), cond("number", "points", "lt", 30)],
        ).pk,
    ]
    with connection.cursor() as cursor:
        # Statistics, as a live database has them: on tables filled a moment ago the planner
        # guesses one row per club and turns the rules' anti-joins into nested scans.
        cursor.execute("ANALYZE")
    return club, manual, automatic


def bulk_worker(client: ClubClient, ops: Ops, manual: list[int], seed: int) -> Callable[[], None]:
    def work() -> None:
        rng = random.Random(seed)
        for _ in range(BULK_REQUESTS):
            group = rng.choice(manual)
            # Overlapping identifiers in every thread: the same rows are fought over.
            identifiers = [email(rng.randrange(MEMBERS + 50)) for _ in range(BULK_SIZE)]
            payload = {"identifier_type": "email", "identifiers": identifiers}
            method = client.post if rng.random() < 0.6 else client.delete
            ops.record(method(f"members_groups/{group}/members", payload), len(identifiers))

    return work


def member_worker(client: ClubClient, ops: Ops, seed: int) -> Callable[[], None]:
    def work() -> None:
        rng = random.Random(seed)
        created: list[int] = []
        for n in range(MEMBER_WRITES):
            choice = rng.random()
            if choice < 0.3:
                response = client.post(
                    "members",
                    {"email": f"new{seed}-{n}@conc.example", "properties": {"tier": "gold"}},
                )
                if response.status_code == 201:
                    created.append(response.json()["id"])
            elif choice < 0.85 or not created:
                number = rng.randrange(MEMBERS)
                member = Member.objects.filter(email=email(number)).values_list("pk", flat=True)
                pk = member.first() or 0
                response = client.patch(
                    f"members/{pk}",
                    {"properties": {"tier": rng.choice(TIERS), "points": rng.randrange(100)}},
                )
            else:
                response = client.delete(f"members/{created.pop(rng.randrange(len(created)))}")
            ops.record(response, 1)

    return work


def import_worker(client: ClubClient, ops: Ops, seed: int) -> Callable[[], None]:
    def work() -> None:
        rng = random.Random(seed)
        for n in range(IMPORTS):
            rows = [
                {
                    "email": email(rng.randrange(MEMBERS + 100)),
                    "properties": {"tier": rng.choice(TIERS), "points": rng.randrange(100)},
                }
                for _ in range(IMPORT_SIZE)
            ]
            response = client.post(
                "members/imports",
                {"import_id": f"conc-{seed}-{n}", "operation": "update", "members": rows},
            )
            ops.record(response, len(rows))

    return work


def rule_worker(
    client: ClubClient, ops: Ops, automatic: list[int], seed: int
) -> Callable[[], None]:
    def work() -> None:
        rng = random.Random(seed)
        for _ in range(RULE_CHANGES):
            rich = automatic[1]
            threshold = rng.randrange(20, 80)
            response = client.patch(
                f"members_groups/{rich}",
                {"audience_conditions": [cond("number", "points", "gte", threshold)]},
            )
            ops.record(response, 1)
            gold = automatic[0]
            response = client.patch(
                f"members_groups/{gold}",
                {"audience_conditions": [cond("string", "tier", "eq", rng.choice(TIERS))]},
            )
            ops.record(response, 1)

    return work


def assert_invariants(club: Club) -> list[str]:
    """Check every invariant on the committed data; return the names of those checked."""
    checked = []
    groups = MembersGroup.objects.filter(club=club)
    for group in groups:
        rows = Membership.objects.filter(group=group).count()
        assert group.members_count == rows, group
        assert not group.recomputing, group
    checked.append(f"members_count equals the rows, for {groups.count()} groups")

    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT group_id, member_id FROM {Membership._meta.db_table} "
            "GROUP BY club_id, group_id, member_id HAVING count(*) > 1"
        )
        assert cursor.fetchall() == []
    checked.append("no duplicate memberships")

    call_command("recompute_groups", "--check")
    checked.append("recompute_groups --check: every automatic group matches its rule")

    members_now = set(Membership.objects.filter(club=club).values_list("group_id", "member_id"))
    with connection.cursor() as cursor:
        # The latest event of each (group, member): the row lock or unique key serialises
        # writers of one pair, so event ids follow commit order for it.
        cursor.execute(
            f"SELECT DISTINCT ON (group_id, member_id) group_id, member_id, kind "
            f"FROM {MembershipEvent._meta.db_table} WHERE club_id = %s "
            "ORDER BY group_id, member_id, id DESC",
            [club.pk],
        )
        last = {(g, m): kind for g, m, kind in cursor.fetchall()}
    joined_last = {pair for pair, kind in last.items() if kind == EventKind.JOINED}
    assert joined_last == members_now
    checked.append(f"last event is 'joined' exactly for the {len(members_now)} memberships")

    events = Counter(
        (group_id, kind)
        for group_id, kind in MembershipEvent.objects.filter(club=club).values_list(
            "group_id", "kind"
        )
    )
    for group in groups:
        joins, leaves = events[(group.pk, EventKind.JOINED)], events[(group.pk, EventKind.LEFT)]
        assert joins - leaves == group.members_count, group
    checked.append("joins minus leaves equals members_count, per group")
    return checked


def test_concurrent_writers_through_the_api_leave_every_invariant_true(
    transactional_db: None,
    settings: Any,
    make_token: Callable[..., tuple[Any, str]],
    client_for: Callable[..., ClubClient],
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    settings.API_RATE_LIMIT = "1000000/min"
    club, manual, automatic = setup_club()
    # Every rule change from here on goes through the background task (run on commit).
    settings.RECOMPUTE_INLINE_MAX = 0
    raw = make_token(club)[1]
    ops = Ops()
    works = [bulk_worker(client_for(club.slug, raw), ops, manual, i) for i in range(BULK_THREADS)]
    works += [
        member_worker(client_for(club.slug, raw), ops, 100),
        import_worker(client_for(club.slug, raw), ops, 200),
        rule_worker(client_for(club.slug, raw), ops, automatic, 300),
    ]
    deadlocks_before = deadlocks()
    failures: list[BaseException] = []
    threads = [run_in_thread(work, failures) for work in works]
    started = time.perf_counter()
    with caplog.at_level(logging.WARNING, logger="loyalty.db"):
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    elapsed = time.perf_counter() - started

    assert failures == []
    assert ops.errors == []
    imports = MemberImport.objects.filter(club=club)
    assert set(imports.values_list("status", flat=True)) == {ImportStatus.DONE}
    assert all(status < 500 for status in ops.statuses), ops.statuses
    assert ops.operations >= 10_000
    checked = assert_invariants(club)
    retried = sum("running it again" in record.getMessage() for record in caplog.records)
    with capsys.disabled():
        sys.stdout.write(
            f"\n{ops.operations} operations in {sum(ops.statuses.values())} requests by "
            f"{len(threads)} threads in {elapsed:.1f} s; statuses {dict(ops.statuses)}; "
            f"deadlocks detected by PostgreSQL {deadlocks() - deadlocks_before}, "
            f"transactions retried {retried}\n"
        )
        for invariant in checked:
            sys.stdout.write(f"  held: {invariant}\n")


def test_a_bulk_add_aborted_by_a_deadlock_is_run_again_and_answers_200(
    transactional_db: None,
    settings: Any,
    make_token: Callable[..., tuple[Any, str]],
    client_for: Callable[..., ClubClient],
    caplog: pytest.LogCaptureFixture,
) -> None:
    club = create_club(slug="knot", name="Knot")
    first, second = bulk_create_members(
        club=club, members=[Member(email=email(0)), Member(email=email(1))], source="system"
    )
    group = group_services.create_group(club=club, name="Manual")
    client = client_for(club.slug, make_token(club)[1])
    responses: list[Any] = []
    failures: list[BaseException] = []
    request = run_in_thread(
        lambda: responses.append(
            client.post(
                f"members_groups/{group.pk}/members",
                {"identifier_type": "id", "identifiers": [first, second]},
            )
        ),
        failures,
    )
    deadlocks_before = deadlocks()

    with caplog.at_level(logging.WARNING, logger="loyalty.db"), transaction.atomic():
        # This side waits longer before checking for deadlocks, so the request is the one
        # PostgreSQL aborts: it holds the group and waits for the second member, held here.
        with connection.cursor() as cursor:
            cursor.execute("SET LOCAL deadlock_timeout = '10s'")
        Member.objects.select_for_update().get(pk=second)
        request.start()
        wait_for_a_lock_wait()
        MembersGroup.objects.select_for_update().get(pk=group.pk)
    request.join()

    assert failures == []
    assert responses[0].status_code == 200
    assert responses[0].json()["members_group"]["members_count"] == 2
    assert deadlocks() == deadlocks_before + 1
    assert sum("running it again" in r.getMessage() for r in caplog.records) == 1
    assert MembershipEvent.objects.filter(group_id=group.pk, kind=EventKind.JOINED).count() == 2


def wait_for_a_lock_wait() -> None:
    with connection.cursor() as cursor:
        for _ in range(200):
            # Activity is read once per transaction unless the snapshot is dropped.
            cursor.execute("SELECT pg_stat_clear_snapshot()")
            cursor.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()"
            )
            if cursor.fetchone()[0]:
                return
            time.sleep(0.02)
    raise AssertionError("the request never waited for the lock")
