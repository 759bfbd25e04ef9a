"""``resume_stalled_work``: run again the background work whose run died."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from groups.schedules import resume_stalled_work


class Command(BaseCommand):
    help = (
        "Enqueue again the background work a killed worker or a lost task left behind: API "
        "member imports queued or running but unmoved for MEMBER_IMPORT_STALE_SECONDS (each "
        "goes on from its first uncommitted row), and group recomputations pending for "
        "RECOMPUTE_STALE_SECONDS. The scheduler process (run_scheduler) runs it every minute."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        self.stdout.write(resume_stalled_work(report=self.stdout.write))
