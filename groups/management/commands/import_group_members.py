"""``import_group_members``: a file of identifiers into (or out of) a manual group, in batches."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from groups import services
from groups.management.lookups import manual_group
from groups.models import Source
from loyalty.management.lookups import club_by_slug
from loyalty.management.progress import Progress, RejectReport
from members.imports.reading import Identifier, NotUtf8, Reject, count_lines, read_identifiers
from members.normalize import NORMALIZERS, InvalidIdentifier
from members.selectors import IDENTIFIER_TYPES

ACTOR = "command:import_group_members"
BATCH_SIZE = 10_000
# Off a terminal (cron, CI, a pipe), a plain progress line at most this often.
PROGRESS_EVERY_SECONDS = 10.0
REPORT_HEADER = ("line", "identifier", "reason")

Item = Identifier | Reject


def positive_int(raw: str) -> int:
    value = int(raw)
    if value < 1:
        raise ValueError(raw)
    return value


def batches(items: Iterator[Item], size: int) -> Iterator[list[Item]]:
    while batch := list(islice(items, size)):
        yield batch


@dataclass
class Totals:
    """What the import has done so far; ``changed`` is added (or removed)."""

    identifiers: int = 0
    changed: int = 0
    unchanged: int = 0
    not_found: int = 0
    invalid: int = 0

    def describe(self, remove: bool) -> str:
        changed, unchanged = ("removed", "not members") if remove else ("added", "already members")
        return (
            f"{changed} {self.changed:,}, {unchanged} {self.unchanged:,}, "
            f"not found {self.not_found:,}, invalid {self.invalid:,}"
        )


def rejected_rows(
    batch: list[Item], result: services.BulkResult, identifier_type: str
) -> list[tuple[int, str, str]]:
    """The batch's identifiers not found or invalid as report rows (line, identifier, reason),
    by line; an unreadable record's identifier is left empty (the reader keeps none of it)."""
    normalize = NORMALIZERS[identifier_type]

    def reason(identifier: str) -> str:
        try:
            normalize(identifier)
        except InvalidIdentifier as exc:
            return f"invalid: {exc}"
        return "invalid"

    first_line: dict[str, int] = {}
    for item in batch:
        if isinstance(item, Identifier):
            first_line.setdefault(item.value, item.line)
    rows = [(first_line[value], value, "not found") for value in result.not_found]
    rows += [(first_line[value], value, reason(value)) for value in result.invalid]
    rows += [
        (item.line, "", f"invalid: {item.reason}") for item in batch if isinstance(item, Reject)
    ]
    return sorted(rows)


class Command(BaseCommand):
    help = (
        "Add the members named in a file to a manual group (or remove them with --remove): "
        "one identifier per line, or one column of a CSV file with a header row. The file is "
        "streamed in batches, each going through the same service as the bulk API, so there "
        "is no size limit; each batch is committed on its own and re-running is harmless."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("club_slug", help="The club's slug.")
        parser.add_argument("group_id", type=int, help="The manual group's id.")
        parser.add_argument("path", type=Path, help="The file (UTF-8, with or without BOM).")
        parser.add_argument(
            "--identifier-type",
            choices=IDENTIFIER_TYPES,
            default="email",
            help="What the identifiers are (default: email).",
        )
        parser.add_argument(
            "--column",
            help="Read this column of a CSV file whose first row names the columns (comma, "
            "semicolon or tab separated), instead of one identifier per line.",
        )
        parser.add_argument(
            "--remove", action="store_true", help="Remove the members instead of adding them."
        )
        parser.add_argument(
            "--batch-size",
            type=positive_int,
            default=BATCH_SIZE,
            help=f"Identifiers per batch and transaction (default: {BATCH_SIZE:,}).",
        )
        parser.add_argument(
            "--report",
            type=Path,
            help="Write the identifiers not found or invalid to this CSV file "
            "(line, identifier, reason).",
        )

    def handle(
        self,
        *args: Any,
        club_slug: str,
        group_id: int,
        path: Path,
        identifier_type: str,
        column: str | None,
        remove: bool,
        batch_size: int,
        report: Path | None,
        **options: Any,
    ) -> None:
        started = time.monotonic()
        group = manual_group(club_by_slug(club_slug), group_id)
        if not path.is_file():
            raise CommandError(f"No file {path}.")
        try:
            total_lines = count_lines(path)
            items = read_identifiers(path, column)
        except NotUtf8 as exc:
            raise CommandError(
                f"{path} is not UTF-8 (line {exc.line}); nothing was changed."
            ) from None
        except ValueError as exc:
            raise CommandError(f"{exc}; nothing was changed.") from None
        change = services.remove_members if remove else services.add_members
        totals = Totals()
        with ExitStack() as stack:
            rejects = None
            if report is not None:
                try:
                    report_file = stack.enter_context(
                        report.open("w", newline="", encoding="utf-8")
                    )
                except OSError as exc:
                    raise CommandError(f"Cannot write the report {report}: {exc}") from None
                rejects = RejectReport(report_file, REPORT_HEADER)
            progress = Progress(
                self.stderr,
                total=total_lines,
                every=PROGRESS_EVERY_SECONDS,
                unit=" lines",
                unit_scale=True,
                dynamic_ncols=True,
            )
            stack.callback(progress.close, total_lines)
            for batch in batches(items, batch_size):
                result = change(
                    group=group,
                    identifier_type=identifier_type,
                    identifiers=[item.value for item in batch if isinstance(item, Identifier)],
                    source=Source.IMPORT,
                    actor=ACTOR,
                )
                group = result.group
                totals.identifiers += len(batch)
                totals.changed += result.changed
                totals.unchanged += result.unchanged
                totals.not_found += len(result.not_found)
                totals.invalid += len(result.invalid)
                totals.invalid += sum(isinstance(item, Reject) for item in batch)
                if rejects is not None:
                    rejects.write(rejected_rows(batch, result, identifier_type))
                self.advance(progress, batch[-1].line, totals, remove)
        elapsed = time.monotonic() - started
        rate = totals.identifiers / max(elapsed, 1e-9)
        self.stdout.write(self.style.SUCCESS(totals.describe(remove).capitalize() + "."))
        self.stdout.write(
            f"{totals.identifiers:,} identifiers in {elapsed:.1f} s ({rate:,.0f} identifiers/s); "
            f"the group {group.name!r} has {group.members_count:,} members."
        )
        if rejects is not None:
            self.stdout.write(
                f"Report: {report} ({rejects.rows:,} identifiers not found or invalid)."
            )

    def advance(self, progress: Progress, line: int, totals: Totals, remove: bool) -> None:
        summary = totals.describe(remove)
        total = progress.total

        def plain(done: float, left: float) -> str:
            rate = line / max(time.monotonic() - progress.started, 1e-9)
            return (
                f"{line:,}/{total:,} lines ({line / max(total, 1):.0%}), "
                f"{rate:,.0f} lines/s, about {left:,.0f} s left: {summary}"
            )

        progress.advance(line, summary, plain)
