"""``export_group_members``: a group's members to a CSV file, streamed, with progress."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from tqdm import tqdm

from groups.exports import EXPORT_COLUMNS, group_members_csv
from groups.management.lookups import group_of_club
from loyalty.management.lookups import club_by_slug
from loyalty.management.progress import TqdmStream


class Command(BaseCommand):
    help = (
        "Write a group's members (" + ", ".join(EXPORT_COLUMNS) + ") to a CSV file, "
        "in member id order, in constant memory."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("club_slug")
        parser.add_argument("group_id", type=int)
        parser.add_argument("file", type=Path, help="The CSV file to write ('-': stdout).")
        parser.add_argument(
            "--escape-formulas",
            action="store_true",
            help="Put a ' before each cell that starts with =, +, -, @, a tab or a carriage "
            "return, which spreadsheets would run as a formula (default: the data as stored).",
        )

    def handle(
        self,
        *args: Any,
        club_slug: str,
        group_id: int,
        file: Path,
        escape_formulas: bool,
        **options: Any,
    ) -> None:
        group = group_of_club(club_by_slug(club_slug), group_id)
        chunks = group_members_csv(group, escape_formulas=escape_formulas)
        if str(file) == "-":
            try:
                for chunk in chunks:
                    self.stdout.write(chunk.decode(), ending="")
                self.stdout.flush()
            except BrokenPipeError:
                # The reader went away (`| head`): stop quietly, as Unix tools do, and keep
                # the interpreter's last flush of stdout from failing too.
                os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            return
        try:
            handle = file.open("wb")
        except OSError as exc:
            raise CommandError(f"Cannot write {file}: {exc}") from None
        rows = 0
        with (
            handle,
            tqdm(
                total=group.members_count,
                unit=" members",
                file=TqdmStream(self.stderr),
                disable=None,
            ) as bar,
        ):
            for chunk in chunks:
                handle.write(chunk)
                lines = chunk.count(b"\n")
                # The header line is no member.
                bar.update(lines - (rows == 0 and lines > 0))
                rows += lines
        self.stdout.write(f"Wrote {max(rows - 1, 0):,} members of {group} to {file}.")
