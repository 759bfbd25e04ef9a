"""The scheduler: every periodic job runs once in each of its periods, however many scheduler
processes run, at the moments the clock says (moved here with time-machine); run by hand,
each job does its work."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import redis
import time_machine
from apscheduler.events import (
    EVENT_JOB_ERROR,
    EVENT_JOB_EXECUTED,
    EVENT_JOB_MISSED,
    JobExecutionEvent,
)
from apscheduler.schedulers.background import BackgroundScheduler
from django.contrib.sessions.backends.db import SessionStore
from django.contrib.sessions.models import Session
from django.core.cache import cache
from django.core.management import CommandError
from django.db import connection
from django_tasks_db.models import DBTaskResult

from groups import services
from groups.models import EventKind, MembershipEvent
from groups.tasks import recompute_group_task, refresh_relative_date_groups_task
from groups.webhooks.models import WebhookDelivery
from loyalty.models import Club
from loyalty.scheduler import add_jobs, discover_jobs
from tests.factories import ClubFactory, GroupFactory, MemberFactory, WebhookEndpointFactory
from tests.helpers import command_output, cond
from tests.webhook_receiver import Receiver

pytestmark = pytest.mark.django_db(transaction=True)

# Half a minute past midnight UTC: every job's next run is ahead.
START = datetime(2031, 3, 3, 0, 0, 30, tzinfo=UTC)
JUST = timedelta(seconds=1)


@pytest.fixture
def database_tasks(settings: Any) -> None:
    """Tasks stay queued in the database, where each enqueue can be counted."""
    settings.TASKS = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend"}}


def enqueued(task: Any) -> list[dict[str, Any]]:
    rows = DBTaskResult.objects.filter(task_path=task.module_path).order_by("enqueued_at")
    return [row.args_kwargs["kwargs"] for row in rows]


class Schedulers:
    """Scheduler processes as ``run_scheduler`` makes them (real APScheduler schedulers, in
    threads here), on a clock the test moves.

    On PostgreSQL they run at once, each with its threads. SQLite's in-memory test database
    answers "table is locked" to a second writer instead of waiting as a database file does
    (make run's), so there they take turns, one thread each.
    """

    def __init__(self, count: int, clock: time_machine.Traveller) -> None:
        self.clock = clock
        self.at_once = connection.vendor == "postgresql"
        self.finished: list[JobExecutionEvent] = []
        self.changed = threading.Condition()
        self.schedulers = [
            add_jobs(BackgroundScheduler(), **({} if self.at_once else {"threads": 1}))
            for _ in range(count)
        ]
        for scheduler in self.schedulers:
            scheduler.add_listener(
                self._record, EVENT_JOB_EXECUTED | EVENT_JOB_ERROR | EVENT_JOB_MISSED
            )
            # Each processes jobs only while the test lets it (resume), so that none runs on
            # a timer of its own.
            scheduler.start(paused=True)

    def _record(self, event: JobExecutionEvent) -> None:
        with self.changed:
            self.finished.append(event)
            self.changed.notify_all()

    def move_to(self, when: datetime) -> Counter[str]:
        """Move the clock to ``when`` and let every scheduler run what is due; return how
        many times each job ran (a run that found its period claimed does not count)."""
        with self.changed:
            self.finished.clear()
        self.clock.move_to(when)
        if self.at_once:
            self._wake(self.schedulers, when)
        else:
            for scheduler in self.schedulers:
                self._wake([scheduler], when)
        # A run missed by over its grace time (the clock jumped hours) is skipped, not failed.
        assert [(e.job_id, e.exception) for e in self.finished if e.code == EVENT_JOB_ERROR] == []
        return Counter(event.job_id for event in self.finished if event.retval)

    def _wake(self, schedulers: list[BackgroundScheduler], when: datetime) -> None:
        due = len(self.finished) + sum(
            1
            for scheduler in schedulers
            for job in scheduler.get_jobs()
            if job.next_run_time <= when
        )
        for scheduler in schedulers:
            scheduler.resume()
        with self.changed:
            assert self.changed.wait_for(lambda: len(self.finished) >= due, timeout=60)
        for scheduler in schedulers:
            scheduler.pause()

    def stop(self) -> None:
        for scheduler in self.schedulers:
            scheduler.shutdown(wait=True)


@pytest.fixture
def two_schedulers() -> Iterator[Schedulers]:
    # The claims live in the cache, whose table outlives a test's other rows.
    cache.clear()
    with time_machine.travel(START, tick=False) as clock:
        schedulers = Schedulers(2, clock)
        try:
            yield schedulers
        finally:
            schedulers.stop()


EVERY_MINUTE = {"send-webhooks", "resume-stalled-work", "relative-dates"}


def test_the_scheduler_has_every_job_of_the_service() -> None:
    assert set(discover_jobs()) == EVERY_MINUTE | {
        "prune-webhook-deliveries",
        "prune-membership-events",
        "prune-task-results",
        "clear-sessions",
    }


def test_two_schedulers_run_each_job_once_in_each_of_its_periods(
    two_schedulers: Schedulers, database_tasks: None
) -> None:
    club = ClubFactory(timezone="UTC")
    minute = START.replace(second=0) + timedelta(minutes=1)

    assert two_schedulers.move_to(minute - JUST) == Counter()
    assert two_schedulers.move_to(minute + JUST) == Counter(EVERY_MINUTE)
    # Later in the same minute, nothing is due again.
    assert two_schedulers.move_to(minute + 30 * JUST) == Counter()
    hourly = "prune-webhook-deliveries"
    assert two_schedulers.move_to(minute.replace(minute=5) + JUST) == Counter(
        EVERY_MINUTE | {hourly}
    )
    # Runs missed while the scheduler slept run once, not once per period (02:05's at 02:15).
    for at, also in [
        ((2, 15), {hourly, "prune-membership-events"}),
        ((2, 45), {"prune-task-results"}),
        ((3, 15), {hourly, "clear-sessions"}),
    ]:
        when = minute.replace(hour=at[0], minute=at[1]) + JUST
        assert two_schedulers.move_to(when) == Counter(EVERY_MINUTE | also), when

    # The club's day was refreshed once, in its first minute, by one of the two.
    assert enqueued(refresh_relative_date_groups_task) == [{"club_id": club.pk}]


def test_a_relative_date_refresh_the_queue_refused_is_tried_again_the_next_minute(
    settings: Any,
) -> None:
    cache.clear()  # the claims, which outlive a test's other rows
    club = ClubFactory(timezone="UTC")
    # The RQ backend with nothing listening where its Redis should be.
    settings.TASKS = {"default": {"BACKEND": "django_tasks_rq.RQBackend", "QUEUES": ["default"]}}
    settings.RQ_QUEUES = {"default": {"URL": "redis://127.0.0.1:1/0"}}

    with time_machine.travel(START, tick=False), pytest.raises(redis.ConnectionError):
        command_output("run_scheduler", "--run", "relative-dates")
    settings.TASKS = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend"}}
    with time_machine.travel(START + timedelta(minutes=1), tick=False):
        output = command_output("run_scheduler", "--run", "relative-dates")

    assert output == "relative-dates: enqueued the relative-date refresh of 1 club(s)\n"
    assert enqueued(refresh_relative_date_groups_task) == [{"club_id": club.pk}]


def test_the_relative_date_refresh_runs_once_a_day_at_each_clubs_local_midnight(
    two_schedulers: Schedulers, database_tasks: None
) -> None:
    # 2031-03-03: Auckland is UTC+13, New York UTC-5.
    auckland = ClubFactory(timezone="Pacific/Auckland")
    new_york = ClubFactory(timezone="America/New_York")
    assert enqueued(refresh_relative_date_groups_task) == []

    two_schedulers.move_to(START + timedelta(minutes=1))
    # The scheduler's first minute refreshes the day it finds undone, in either zone.
    assert sorted(k["club_id"] for k in enqueued(refresh_relative_date_groups_task)) == sorted(
        [auckland.pk, new_york.pk]
    )
    DBTaskResult.objects.all().delete()

    # New York's next midnight is 05:00 UTC, Auckland's 11:00 UTC.
    two_schedulers.move_to(START.replace(hour=4, minute=59, second=1))
    assert enqueued(refresh_relative_date_groups_task) == []
    two_schedulers.move_to(START.replace(hour=5, minute=0, second=1))
    assert enqueued(refresh_relative_date_groups_task) == [{"club_id": new_york.pk}]
    two_schedulers.move_to(START.replace(hour=10, minute=59, second=1))
    assert enqueued(refresh_relative_date_groups_task) == [{"club_id": new_york.pk}]
    two_schedulers.move_to(START.replace(hour=11, minute=0, second=1))
    two_schedulers.move_to(START.replace(hour=11, minute=30, second=1))
    assert enqueued(refresh_relative_date_groups_task) == [
        {"club_id": new_york.pk},
        {"club_id": auckland.pk},
    ]

    two_schedulers.move_to(START.replace(day=4, hour=5, minute=0, second=1))
    assert enqueued(refresh_relative_date_groups_task)[2:] == [{"club_id": new_york.pk}]


def test_the_refresh_moves_a_member_out_when_the_clubs_day_turns(
    two_schedulers: Schedulers,
) -> None:
    club = ClubFactory(timezone="Pacific/Auckland")
    # Local 2031-03-03 13:00; the member visited "yesterday" (local 2031-03-02).
    member = MemberFactory(club=club, properties={"last_visit": "2031-03-02"})
    group = services.create_group(
        club=club,
        name="Visited lately",
        audience_conditions=[cond("date", "last_visit", "within_last_days", 1)],
    )
    two_schedulers.move_to(START + timedelta(minutes=1))
    assert list(group.memberships.values_list("member_id", flat=True)) == [member.pk]

    # 11:00 UTC is local midnight: "yesterday" is now two days ago.
    two_schedulers.move_to(START.replace(hour=11, minute=0, second=1))

    group.refresh_from_db()
    assert group.members_count == 0
    left = MembershipEvent.objects.get(group_id=group.pk, kind=EventKind.LEFT)
    assert left.actor == "schedule:relative_dates"


# Each job by hand (run_scheduler --run), as the scheduler runs it -------------------------


def test_the_jobs_are_listed_with_their_periods_and_commands() -> None:
    listing = command_output("run_scheduler", "--list")

    assert "send-webhooks: every minute; by hand: python manage.py send_webhooks" in listing
    assert "prune-membership-events: every day at 02:15 UTC" in listing
    assert "prune-webhook-deliveries: every hour at 5 minutes past" in listing


def test_an_unknown_job_is_refused_with_the_names() -> None:
    with pytest.raises(CommandError, match="No job 'nope'; the jobs are: clear-sessions, "):
        command_output("run_scheduler", "--run", "nope")


def test_send_webhooks_sends_a_due_delivery_once(
    club: Club, receiver: Receiver, database_tasks: None
) -> None:
    WebhookEndpointFactory(club=club, url=receiver.url)
    MemberFactory(club=club)

    assert command_output("run_scheduler", "--run", "send-webhooks") == (
        "send-webhooks: 1 due: 1 delivered, 0 to retry, 0 failed.\n"
    )
    assert command_output("run_scheduler", "--run", "send-webhooks").startswith(
        "send-webhooks: 0 due"
    )
    assert [request.status for request in receiver.requests] == [200]


def test_resume_stalled_work_enqueues_a_lost_recomputation_again(
    club: Club, settings: Any, database_tasks: None
) -> None:
    settings.RECOMPUTE_INLINE_MAX = 0
    MemberFactory(club=club, properties={"points": 2})
    group = services.create_group(
        club=club, name="Big", audience_conditions=[cond("number", "points", "gt", 1)]
    )
    DBTaskResult.objects.all().delete()
    later = datetime.now(UTC) + timedelta(seconds=settings.RECOMPUTE_STALE_SECONDS + 1)

    with time_machine.travel(later, tick=False):
        out = command_output("run_scheduler", "--run", "resume-stalled-work")

    assert out.endswith("0 import(s) unmoved for 300 s, 1 recomputation(s) pending for 900 s.\n")
    assert [kwargs["group_id"] for kwargs in enqueued(recompute_group_task)] == [group.pk]


def test_prune_jobs_delete_only_what_is_past_its_retention(
    club: Club, settings: Any, receiver: Receiver
) -> None:
    settings.MEMBERSHIP_EVENTS_RETENTION_DAYS = 30
    settings.WEBHOOKS_DELIVERIES_RETENTION_DAYS = 30
    group = GroupFactory(club=club)
    WebhookEndpointFactory(club=club, url=receiver.url)
    now = datetime.now(UTC)
    with time_machine.travel(now - timedelta(days=40), tick=False):
        member = MemberFactory(club=club)
        services.add_member_ids(group=group, member_ids=[member.pk], source="api")
        services.remove_member_ids(group=group, member_ids=[member.pk], source="api")
    recent = MemberFactory(club=club)
    assert MembershipEvent.objects.filter(group_id=group.pk, member_id=member.pk).count() == 2
    assert WebhookDelivery.objects.filter(created_at__lt=now - timedelta(days=30)).exists()

    events = command_output("run_scheduler", "--run", "prune-membership-events")
    deliveries = command_output("run_scheduler", "--run", "prune-webhook-deliveries")

    assert events.startswith("prune-membership-events: deleted ")
    # A join and a leave before the cut: the member is out, nothing needs keeping.
    assert not MembershipEvent.objects.filter(group_id=group.pk, member_id=member.pk).exists()
    assert MembershipEvent.objects.filter(member_id=recent.pk).exists()
    assert deliveries.startswith("prune-webhook-deliveries: pruned ")
    assert not WebhookDelivery.objects.filter(created_at__lt=now - timedelta(days=30)).exists()
    assert WebhookDelivery.objects.exists()


def test_prune_task_results_keeps_recent_and_unfinished_ones(
    settings: Any, database_tasks: None
) -> None:
    settings.TASK_RESULTS_RETENTION_DAYS = 14
    now = datetime.now(UTC)
    with time_machine.travel(now - timedelta(days=20), tick=False):
        old = refresh_relative_date_groups_task.enqueue(club_id=1)
        waiting = refresh_relative_date_groups_task.enqueue(club_id=2)
    recent = refresh_relative_date_groups_task.enqueue(club_id=3)
    DBTaskResult.objects.filter(pk__in=[old.id, recent.id]).update(
        status="SUCCESSFUL", finished_at=now - timedelta(days=20)
    )
    DBTaskResult.objects.filter(pk=recent.id).update(finished_at=now - timedelta(days=2))

    out = command_output("run_scheduler", "--run", "prune-task-results")

    assert out == "prune-task-results: deleted 1 task results finished over 14 days ago\n"
    assert {str(pk) for pk in DBTaskResult.objects.values_list("pk", flat=True)} == {
        waiting.id,
        recent.id,
    }


def test_clear_sessions_deletes_only_expired_ones(db: None) -> None:
    now = datetime.now(UTC)
    with time_machine.travel(now - timedelta(days=30), tick=False):
        expired = SessionStore()
        expired.set_expiry(60)
        expired.create()
    live = SessionStore()
    live.create()

    assert command_output("run_scheduler", "--run", "clear-sessions") == (
        "clear-sessions: expired sessions cleared\n"
    )
    assert list(Session.objects.values_list("session_key", flat=True)) == [live.session_key]


def test_the_relative_date_refresh_by_hand_takes_one_club(club: Club, other_club: Club) -> None:
    rule = [cond("date", "created_at", "within_last_days", 7)]
    services.create_group(club=club, name="New", audience_conditions=rule)
    services.create_group(club=other_club, name="New", audience_conditions=rule)

    assert command_output("recompute_groups", "--relative-dates", "--club", club.slug) == (
        "Refreshed 1 groups.\n"
    )
    assert command_output("recompute_groups", "--relative-dates") == "Refreshed 2 groups.\n"
