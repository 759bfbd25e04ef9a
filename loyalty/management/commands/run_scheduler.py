"""``run_scheduler``: the process that runs every periodic job (the Procfile's scheduler)."""

from __future__ import annotations

import signal
from typing import Any

from apscheduler.schedulers.blocking import BlockingScheduler
from django.core.management.base import BaseCommand, CommandError, CommandParser

from loyalty.scheduler import add_jobs, discover_jobs


class Command(BaseCommand):
    help = (
        "Run the periodic jobs (sending due webhooks, resuming stalled work, the relative-date "
        "refresh at each club's midnight, pruning old history, task results and sessions) "
        "until stopped. Any number may run: each job runs once per period among them all."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--list",
            action="store_true",
            dest="list_jobs",
            help="List the jobs, their periods and commands.",
        )
        parser.add_argument("--run", metavar="JOB", help="Run this job once now, and stop.")

    def handle(self, *args: Any, list_jobs: bool, run: str | None, **options: Any) -> None:
        jobs = discover_jobs()
        if list_jobs:
            for job in jobs.values():
                self.stdout.write(
                    f"{job.name}: {job.when}; by hand: {job.by_hand}\n    {job.description}"
                )
            return
        if run is not None:
            if run not in jobs:
                raise CommandError(f"No job {run!r}; the jobs are: {', '.join(jobs)}.")
            self.stdout.write(f"{run}: {jobs[run].run()}")
            return
        scheduler = add_jobs(BlockingScheduler())

        def stop(signum: int, frame: object) -> None:
            # Let the jobs running finish, then leave start() below; a second signal while
            # they finish changes nothing.
            if scheduler.running:
                scheduler.shutdown(wait=True)

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        self.stdout.write(f"Scheduler started with {len(jobs)} jobs: {', '.join(jobs)}.")
        scheduler.start()
        self.stdout.write("Scheduler stopped.")
