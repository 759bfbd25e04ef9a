"""Killed connections and workers leave no partial write, and the work can be run again."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from django.core.management import call_command
from django.db import connection, connections, transaction
from django.db.models import QuerySet

from groups import services as group_services
from groups.models import MembersGroup, Membership, MembershipEvent
from loyalty.services import create_club
from members.models import Member
from members.services import bulk_create_members
from tests.api_fixtures import ClubClient
from tests.helpers import assert_consistent, cond, in_groups

PROJECT = Path(__file__).resolve().parents[2]


def backend_waiting_for_a_lock() -> int:
    """The pid of the other backend of this database that waits for a lock."""
    with connection.cursor() as cursor:
        for _ in range(500):
            cursor.execute("SELECT pg_stat_clear_snapshot()")
            cursor.execute(
                "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
                "AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()"
            )
            row = cursor.fetchone()
            if row:
                return int(row[0])
            time.sleep(0.02)
    raise AssertionError("nothing waited for the lock")


def killed_while_waiting(locked: QuerySet[Any], work: Callable[[], object]) -> None:
    """Run ``work`` in a thread (its own connection) and, once it waits for the row lock on
    ``locked`` held here, terminate its database backend."""

    def run() -> None:
        try:
            work()
        finally:
            connections.close_all()

    thread = threading.Thread(target=run)
    with transaction.atomic():
        locked.select_for_update().get()
        thread.start()
        pid = backend_waiting_for_a_lock()
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_terminate_backend(%s)", [pid])
    thread.join()


def state(group: MembersGroup) -> tuple[Any, ...]:
    group.refresh_from_db()
    return (
        group.members_count,
        sorted(Membership.objects.filter(group=group).values_list("member_id", flat=True)),
        MembershipEvent.objects.filter(group_id=group.pk).count(),
    )


def test_a_bulk_add_whose_connection_is_killed_writes_nothing_and_answers_json(
    transactional_db: None,
    settings: Any,
    make_token: Callable[..., tuple[Any, str]],
    client_for: Callable[..., ClubClient],
) -> None:
    club = create_club(slug="cut", name="Cut")
    ids = bulk_create_members(
        club=club, members=[Member(email=f"m{n}@cut.example") for n in range(60)], source="system"
    )
    manual = group_services.create_group(club=club, name="Manual")
    group_services.add_member_ids(group=manual, member_ids=ids[:10], source="api")
    follower = group_services.create_group(
        club=club, name="Follower", audience_conditions=[in_groups(manual.pk)]
    )
    before, follower_before = state(manual), state(follower)
    client = client_for(club.slug, make_token(club)[1])
    responses: list[Any] = []

    # The bulk add writes the manual group's rows, then waits for the follower's lock.
    killed_while_waiting(
        MembersGroup.objects.filter(pk=follower.pk),
        lambda: responses.append(
            client.post(
                f"members_groups/{manual.pk}/members",
                {"identifier_type": "id", "identifiers": ids},
            )
        ),
    )

    assert responses[0].status_code >= 500
    body = responses[0].json()
    assert set(body) == {"error"}
    assert "Traceback" not in body["error"]
    assert state(manual) == before
    assert state(follower) == follower_before
    assert_consistent(manual)
    assert_consistent(follower)


def test_a_worker_killed_mid_recomputation_leaves_the_group_consistent_and_rerunnable(
    transactional_db: None, settings: Any
) -> None:
    settings.TASKS = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend"}}
    club = create_club(slug="kill", name="Kill")
    bulk_create_members(
        club=club,
        members=[
            Member(email=f"m{n}@kill.example", properties={"tier": ("gold", "silver")[n % 2]})
            for n in range(200)
        ],
        source="system",
    )
    gold = group_services.create_group(
        club=club, name="Tier", audience_conditions=[cond("string", "tier", "eq", "gold")]
    )
    follower = group_services.create_group(
        club=club, name="Follower", audience_conditions=[in_groups(gold.pk)]
    )
    settings.RECOMPUTE_INLINE_MAX = 0
    group_services.update_group(
        group=gold, audience_conditions=[cond("string", "tier", "eq", "silver")]
    )
    gold.refresh_from_db()
    assert gold.recomputing
    before, follower_before = state(gold), state(follower)
    env = {
        **os.environ,
        "DATABASE_URL": (
            f"postgres://{connection.settings_dict['USER']}@{connection.settings_dict['HOST']}:"
            f"{connection.settings_dict['PORT'] or 5432}/{connection.settings_dict['NAME']}"
        ),
    }
    code = (
        "from groups.tasks import recompute_group_task; "
        f"recompute_group_task.call(group_id={gold.pk}, version={gold.recompute_version})"
    )

    with transaction.atomic():
        # The worker rewrites the group's rows, then waits here for its follower: killed there.
        MembersGroup.objects.select_for_update().get(pk=follower.pk)
        worker = subprocess.Popen(
            [sys.executable, "manage.py", "shell", "-c", code], cwd=PROJECT, env=env
        )
        pid = backend_waiting_for_a_lock()
        worker.send_signal(signal.SIGKILL)
        worker.wait()
        with connection.cursor() as cursor:
            # The orphaned backend would notice its client is gone only when it next speaks.
            cursor.execute("SELECT pg_terminate_backend(%s)", [pid])

    assert worker.returncode == -signal.SIGKILL
    assert state(gold) == before
    assert state(follower) == follower_before
    assert_consistent(gold)
    assert_consistent(follower)
    gold.refresh_from_db()
    assert gold.recomputing  # the killed run cleared nothing

    call_command("recompute_groups", "--group", str(gold.pk))

    gold.refresh_from_db()
    assert not gold.recomputing
    assert gold.members_count == 100
    assert_consistent(gold)
    assert_consistent(follower)
    call_command("recompute_groups", "--check")


def test_an_import_whose_connection_is_killed_mid_batch_keeps_whole_batches_and_reruns(
    transactional_db: None, tmp_path: Path
) -> None:
    club, twin = create_club(slug="cut-import", name="Cut"), create_club(slug="twin", name="T")
    for each in (club, twin):
        bulk_create_members(club=each, members=[Member(email="old@cut.example")], source="system")
    rows = [f"new{n}@cut.example,{n}" for n in range(1, 121)]
    # Row 110, in the third batch of 50, updates the member locked below.
    rows[109] = "old@cut.example,110"
    path = tmp_path / "members.csv"
    path.write_text("email,points:number\n" + "\n".join(rows) + "\n")
    old = Member.objects.get(club=club)
    errors: list[BaseException] = []

    def run_import() -> None:
        try:
            call_command("import_members", club.slug, str(path), "--batch-size", "50")
        except BaseException as exc:
            errors.append(exc)

    killed_while_waiting(Member.objects.filter(pk=old.pk), run_import)

    assert errors
    created = set(Member.objects.filter(club=club).values_list("email", flat=True))
    assert created == {"old@cut.example"} | {f"new{n}@cut.example" for n in range(1, 101)}
    for group in MembersGroup.objects.filter(club=club):
        assert_consistent(group)

    call_command("import_members", club.slug, str(path), "--batch-size", "50")
    call_command("import_members", twin.slug, str(path), "--batch-size", "50")

    def final(each: Any) -> set[tuple[Any, ...]]:
        return set(Member.objects.filter(club=each).values_list("email", "properties__points"))

    assert final(club) == final(twin)
    assert len(final(club)) == 120
    for each in (club, twin):
        for group in MembersGroup.objects.filter(club=each):
            assert_consistent(group)
    call_command("recompute_groups", "--check")
