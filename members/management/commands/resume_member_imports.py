"""``resume_member_imports``: run again the API member imports whose run died."""

from __future__ import annotations

import time
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser

from members import import_services


class Command(BaseCommand):
    help = (
        "Enqueue a run of every API member import that is queued or running but has not "
        "moved for MEMBER_IMPORT_STALE_SECONDS (its worker died or its task was lost); the "
        "run goes on from its first uncommitted row. The Procfile's clock process runs it "
        "with --every 60."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--every",
            type=int,
            metavar="SECONDS",
            help="Keep running: sweep now, then again every SECONDS (a process of its own).",
        )

    def handle(self, *args: Any, every: int | None, **options: Any) -> None:
        self.sweep()
        while every:
            time.sleep(every)
            self.sweep()

    def sweep(self) -> None:
        resumed = import_services.resume_stale_imports()
        seconds = settings.MEMBER_IMPORT_STALE_SECONDS
        for member_import in resumed:
            self.stdout.write(
                f"Resumed import {member_import.import_id!r} of club {member_import.club.slug}."
            )
        self.stdout.write(f"{len(resumed)} import(s) had not moved for {seconds} s.")
