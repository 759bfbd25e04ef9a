"""Periodic jobs, and the one scheduler process that runs them (``run_scheduler``).

Each app declares its jobs in its own ``schedules`` module with ``@periodic``; the
scheduler imports them all. APScheduler times the runs: every job fires at fixed points of
the UTC clock (a period counted from 2000-01-01 plus the job's offset), so that every
scheduler process fires it at the same moments. Before running, a process claims the period
with one atomic ``cache.add`` of the job's name and the period's start in the shared cache
(by default a table of the database, on PostgreSQL and SQLite alike; Redis with
``CACHE_URL=redis://...``): of several scheduler processes, only the first to claim a
period runs the job in it, and the others skip it. Jobs are sweeps that are safe to run
again, so a process that dies mid-run loses at most that period's run.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TypeVar

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.base import BaseScheduler
from apscheduler.triggers.interval import IntervalTrigger
from django.core.cache import cache
from django.db import close_old_connections
from django.utils import timezone
from django.utils.module_loading import autodiscover_modules

logger = logging.getLogger(__name__)

# The origin of every job's periods: a midnight, so that daily jobs fall at their offset.
EPOCH = datetime(2000, 1, 1, tzinfo=UTC)
CLAIM_PREFIX = "schedule:"
# Jobs run in threads of the scheduler process, so that a slow one delays no other.
THREADS = 4


@dataclass(frozen=True)
class Job:
    """A job run once in each period of length ``every``, at ``offset`` into the period."""

    name: str
    run: Callable[[], str]
    every: timedelta
    offset: timedelta
    by_hand: str

    @property
    def description(self) -> str:
        return " ".join((self.run.__doc__ or "").split())

    @property
    def when(self) -> str:
        """The period for people: "every minute", "every day at 02:45 UTC"."""
        units = {
            timedelta(days=1): "day",
            timedelta(hours=1): "hour",
            timedelta(minutes=1): "minute",
        }
        every = f"every {units.get(self.every, self.every)}"
        if not self.offset:
            return every
        hours, seconds = divmod(int(self.offset.total_seconds()), 3600)
        if self.every == timedelta(hours=1):
            return f"{every} at {seconds // 60} minutes past"
        return f"{every} at {hours:02}:{seconds // 60:02} UTC"

    def period_start(self, now: datetime) -> datetime:
        """The start of the period ``now`` falls in (the moment the job fires in it)."""
        return EPOCH + self.offset + ((now - EPOCH - self.offset) // self.every) * self.every

    def trigger(self) -> IntervalTrigger:
        return IntervalTrigger(
            seconds=int(self.every.total_seconds()), start_date=EPOCH + self.offset, timezone=UTC
        )


JOBS: dict[str, Job] = {}


Run = TypeVar("Run", bound=Callable[[], str])


def periodic(
    name: str, *, every: timedelta, by_hand: str, offset: timedelta = timedelta(0)
) -> Callable[[Run], Run]:
    """Register the decorated function (returning a one-line summary) as a periodic job.

    ``by_hand`` is the command that does the same once, for the docs and ``--list``.
    """
    if not timedelta(0) <= offset < every:
        raise ValueError(f"The offset of {name} must fall within its period.")

    def register(run: Run) -> Run:
        JOBS[name] = Job(name=name, run=run, every=every, offset=offset, by_hand=by_hand)
        return run

    return register


def discover_jobs() -> dict[str, Job]:
    """Every app's jobs (their ``schedules`` modules imported), by name."""
    autodiscover_modules("schedules")
    return dict(sorted(JOBS.items()))


def claim(key: str, hold_for: timedelta) -> bool:
    """Whether this process is the first to claim ``key`` (kept for ``hold_for``)."""
    holder = f"{socket.gethostname()}:{os.getpid()}:{timezone.now().isoformat()}"
    if cache.add(CLAIM_PREFIX + key, holder, timeout=int(hold_for.total_seconds())):
        return True
    # Django's caches answer False for a failed write as for a taken key: tell them apart.
    if cache.get(CLAIM_PREFIX + key) is None:
        logger.warning("Could not claim %s: the cache did not take the claim", key)
    return False


def release(key: str) -> None:
    """Give a claim up, so that the next run (of any scheduler process) may take it."""
    cache.delete(CLAIM_PREFIX + key)


def run_claimed(job: Job) -> bool:
    """Run the job unless another scheduler process has claimed its current period; return
    whether it ran here."""
    # A thread of its own: its database connections follow CONN_MAX_AGE as requests' do.
    close_old_connections()
    try:
        period = job.period_start(timezone.now())
        if not claim(f"{job.name}:{period.isoformat()}", hold_for=2 * job.every):
            logger.info("%s: not run, the period %s is claimed", job.name, period)
            return False
        started = time.perf_counter()
        summary = job.run()
        logger.info(
            "%s: %s",
            job.name,
            summary,
            extra={
                "job": job.name,
                "period": period.isoformat(),
                "duration_ms": round((time.perf_counter() - started) * 1000, 1),
            },
        )
        return True
    finally:
        close_old_connections()


def add_jobs(scheduler: BaseScheduler, threads: int = THREADS) -> BaseScheduler:
    """Put every job on ``scheduler`` (a fresh APScheduler scheduler) and return it."""
    scheduler.configure(
        timezone=UTC,
        executors={"default": ThreadPoolExecutor(threads)},
        # A run that is late (the process was busy or stopped) runs once, not once per
        # period missed, if it is at most half a period (an hour at most) late.
        job_defaults={"coalesce": True, "max_instances": 1},
    )
    for job in discover_jobs().values():
        scheduler.add_job(
            run_claimed,
            job.trigger(),
            args=[job],
            id=job.name,
            name=job.name,
            misfire_grace_time=int(min(job.every / 2, timedelta(hours=1)).total_seconds()),
        )
    return scheduler
