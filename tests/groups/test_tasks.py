"""Background recomputation: large rules run as tasks after commit, flagged meanwhile."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.core.management import call_command
from django.utils import timezone
from django_tasks_db.models import DBTaskResult

from groups import services
from groups.models import MembersGroup, Membership
from loyalty.models import Club
from tests.factories import MemberFactory
from tests.helpers import assert_consistent, command_output, cond

pytestmark = pytest.mark.django_db


@pytest.fixture
def big_club(club: Club, settings: Any) -> Club:
    """A club over the inline limit: three members against a limit of two."""
    settings.RECOMPUTE_INLINE_MAX = 2
    for points in (1, 5, 9):
        MemberFactory(club=club, properties={"points": points})
    return club


def test_a_large_rule_change_is_flagged_then_recomputed_by_a_task_after_commit(
    big_club: Club, django_capture_on_commit_callbacks: Any
) -> None:
    with django_capture_on_commit_callbacks() as callbacks:
        group = services.create_group(
            club=big_club, name="High", audience_conditions=[cond("number", "points", "gte", 5)]
        )
    assert group.recomputing is True
    assert group.members_count == 0
    assert len(callbacks) == 1

    callbacks[0]()

    group.refresh_from_db()
    assert group.recomputing is False
    assert group.members_count == 2
    assert_consistent(group)


def test_only_the_latest_scheduled_run_clears_the_flag(
    big_club: Club, django_capture_on_commit_callbacks: Any
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        group = services.create_group(
            club=big_club, name="High", audience_conditions=[cond("number", "points", "gte", 5)]
        )
    with django_capture_on_commit_callbacks() as first:
        services.update_group(group=group, audience_conditions=[cond("number", "points", "gte", 9)])
    with django_capture_on_commit_callbacks() as second:
        services.update_group(group=group, audience_conditions=[cond("number", "points", "gte", 1)])

    services.recompute_group(group_id=group.pk, version=group.recompute_version + 1)
    group.refresh_from_db()
    assert group.recomputing is True, "a stale run must not clear the flag of a newer change"

    first[0]()
    second[0]()
    group.refresh_from_db()
    assert group.recomputing is False
    assert group.members_count == 3
    assert_consistent(group)


def test_recomputing_twice_changes_nothing_the_second_time(big_club: Club) -> None:
    group = MembersGroup.objects.get(club=big_club, system=True)
    Membership.objects.filter(group=group).delete()
    MembersGroup.objects.filter(pk=group.pk).update(members_count=0)

    first = services.recompute_group(group_id=group.pk)
    second = services.recompute_group(group_id=group.pk)

    assert len(first.joined) == 3
    assert (second.joined, second.left) == ([], [])
    group.refresh_from_db()
    assert group.members_count == Membership.objects.filter(group=group).count() == 3


def test_the_daily_refresh_recomputes_only_rules_relative_to_today(club: Club) -> None:
    relative = services.create_group(
        club=club,
        name="New",
        audience_conditions=[cond("date", "created_at", "within_last_days", 7)],
    )
    services.create_group(
        club=club, name="Fixed", audience_conditions=[cond("number", "points", "gt", 1)]
    )
    assert services.refresh_relative_date_groups() == [relative.pk]


# Committed for real: the worker closes its database connection between tasks.
@pytest.mark.django_db(transaction=True)
def test_the_database_backend_and_its_worker_run_a_scheduled_recomputation(
    big_club: Club, settings: Any
) -> None:
    settings.TASKS = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend"}}
    group = services.create_group(
        club=big_club, name="High", audience_conditions=[cond("number", "points", "gte", 5)]
    )
    assert DBTaskResult.objects.filter(status="READY").count() == 1
    group.refresh_from_db()
    assert (group.recomputing, group.members_count) == (True, 0)

    call_command("db_worker", "--batch", "--no-startup-delay", "--no-reload", verbosity=0)

    group.refresh_from_db()
    assert (group.recomputing, group.members_count) == (False, 2)
    assert DBTaskResult.objects.get().status == "SUCCESSFUL"
    assert_consistent(group)


def sweep() -> str:
    return command_output("resume_stalled_work")


def test_the_sweep_enqueues_again_a_recomputation_whose_task_was_lost_once_stale(
    big_club: Club, settings: Any, django_capture_on_commit_callbacks: Any
) -> None:
    settings.RECOMPUTE_STALE_SECONDS = 600
    # The task is never enqueued: its callback is dropped, as a worker's death drops a run.
    with django_capture_on_commit_callbacks():
        group = services.create_group(
            club=big_club, name="High", audience_conditions=[cond("number", "points", "gte", 5)]
        )

    assert sweep().endswith("0 recomputation(s) pending for 600 s.\n")
    group.refresh_from_db()
    assert (group.recomputing, group.members_count) == (True, 0)

    MembersGroup.objects.filter(pk=group.pk).update(
        recompute_requested_at=timezone.now() - timedelta(seconds=601)
    )
    output = sweep()

    assert f"Recomputing again group {group.pk} (High) of club {big_club.slug}.\n" in output
    assert output.endswith("1 recomputation(s) pending for 600 s.\n")
    group.refresh_from_db()
    assert (group.recomputing, group.members_count) == (False, 2)
    assert_consistent(group)
    assert sweep().endswith("0 recomputation(s) pending for 600 s.\n")


def test_a_sweep_while_the_queue_is_backed_up_adds_no_second_task(
    big_club: Club, settings: Any
) -> None:
    # Queued, not run: the database backend without its worker.
    settings.TASKS = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend"}}
    settings.RECOMPUTE_STALE_SECONDS = 600
    # In the test's transaction its task, enqueued on commit, is never enqueued: lost.
    group = services.create_group(
        club=big_club, name="High", audience_conditions=[cond("number", "points", "gte", 5)]
    )
    assert DBTaskResult.objects.count() == 0

    def age() -> None:
        MembersGroup.objects.filter(pk=group.pk).update(
            recompute_requested_at=timezone.now() - timedelta(seconds=601)
        )

    age()
    assert "1 recomputation(s)" in sweep()
    assert "0 recomputation(s)" in sweep()
    assert DBTaskResult.objects.count() == 1
    age()
    assert "1 recomputation(s)" in sweep()
    assert DBTaskResult.objects.count() == 2
