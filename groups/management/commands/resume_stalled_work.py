"""``resume_stalled_work``: run again the background work whose run died."""

from __future__ import annotations

import time
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser

from groups import services
from members import import_services


class Command(BaseCommand):
    help = (
        "Enqueue again the background work a killed worker or a lost task left behind: API "
        "member imports queued or running but unmoved for MEMBER_IMPORT_STALE_SECONDS (each "
        "goes on from its first uncommitted row), and group recomputations pending for "
        "RECOMPUTE_STALE_SECONDS. The Procfile's sweeper process runs it with --every 60."
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
        imports = import_services.resume_stale_imports()
        for member_import in imports:
            self.stdout.write(
                f"Resumed import {member_import.import_id!r} of club {member_import.club.slug}."
            )
        groups = services.resume_stale_recomputations()
        for group in groups:
            self.stdout.write(
                f"Recomputing again group {group.pk} ({group}) of club {group.club.slug}."
            )
        self.stdout.write(
            f"{len(imports)} import(s) unmoved for {settings.MEMBER_IMPORT_STALE_SECONDS} s, "
            f"{len(groups)} recomputation(s) pending for {settings.RECOMPUTE_STALE_SECONDS} s."
        )
