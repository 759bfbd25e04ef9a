"""``import_group_members``: a file of identifiers into (or out of) a manual group, in batches."""

from __future__ import annotations

import codecs
import csv
import time
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from functools import partial
from itertools import islice
from pathlib import Path
from typing import Any, NamedTuple, TextIO

from django.core.management.base import BaseCommand, CommandError, CommandParser, OutputWrapper
from tqdm import tqdm

from groups import services
from groups.management.lookups import club_by_slug, manual_group
from groups.management.tqdm_stream import TqdmStream
from groups.models import Source
from members.normalize import NORMALIZERS, InvalidIdentifier
from members.selectors import IDENTIFIER_TYPES

ACTOR = "command:import_group_members"
BATCH_SIZE = 10_000
# Off a terminal (cron, CI, a pipe), a plain progress line at most this often.
PROGRESS_EVERY_SECONDS = 10.0
SCAN_CHUNK = 1 << 20
REPORT_HEADER = ("line", "identifier", "reason")


class Line(NamedTuple):
    number: int  # in the file
    identifier: str  # as written


class Unreadable(NamedTuple):
    """A CSV record the reader refuses (a field over ``csv.field_size_limit()``): an invalid
    identifier, reported with its reason and never sent to the service."""

    number: int
    reason: str


Item = Line | Unreadable


def positive_int(raw: str) -> int:
    value = int(raw)
    if value < 1:
        raise ValueError(raw)
    return value


def _is_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _first_bad_line(path: Path) -> int:
    with path.open("rb") as file:
        return next((number for number, line in enumerate(file, 1) if not _is_utf8(line)), 0)


def scan(path: Path) -> int:
    """Count the file's lines and check that it is UTF-8, before anything is written."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    lines, last = 0, b"\n"
    with path.open("rb") as file:
        try:
            for chunk in iter(partial(file.read, SCAN_CHUNK), b""):
                decoder.decode(chunk)
                lines += chunk.count(b"\n")
                last = chunk[-1:]
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            raise CommandError(
                f"{path} is not UTF-8 (line {_first_bad_line(path)}); nothing was changed."
            ) from None
    return lines + (last != b"\n")


def plain_lines(file: TextIO) -> Iterator[Item]:
    """One identifier per line, trimmed; blank lines are skipped."""
    for number, line in enumerate(file, 1):
        value = line.strip()
        if value:
            yield Line(number, value)


def column_lines(file: TextIO, column: str) -> Iterator[Item]:
    """The values of ``column`` of a CSV file with a header row, comma or semicolon separated.

    The header is read at once, so an unknown column is refused before anything is written.
    Empty cells are skipped like blank lines; a record the CSV reader refuses is
    ``Unreadable``, and reading goes on with the next line, as ``import_members`` does.
    """
    header_line = file.readline()
    delimiter = ";" if header_line.count(";") > header_line.count(",") else ","
    try:
        cells = next(csv.reader([header_line], delimiter=delimiter), [])
    except csv.Error as exc:
        raise CommandError(
            f"The header row is not valid CSV: {exc}; nothing was changed."
        ) from None
    header = [name.strip() for name in cells]
    # The exact name, else the one name that differs only in case (import_members reads
    # its columns regardless of case too).
    named = [i for i, name in enumerate(header) if name == column.strip()] or [
        i for i, name in enumerate(header) if name.casefold() == column.strip().casefold()
    ]
    if len(named) != 1:
        problem = "No column" if not named else "More than one column named"
        raise CommandError(
            f"{problem} {column!r} in the header row ({', '.join(map(repr, header))}); "
            "nothing was changed."
        )
    index = named[0]

    def values() -> Iterator[Item]:
        reader = csv.reader(file, delimiter=delimiter)
        # Line numbers are the reader's + 1: the header line was read before it.
        while True:
            try:
                row = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                yield Unreadable(reader.line_num + 1, f"not valid CSV: {exc}")
                continue
            value = row[index].strip() if index < len(row) else ""
            if value:
                yield Line(reader.line_num + 1, value)

    return values()


def batches(lines: Iterator[Item], size: int) -> Iterator[list[Item]]:
    while batch := list(islice(lines, size)):
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


class Progress:
    """A tqdm bar (rate, ETA) on a terminal; elsewhere a plain line now and then."""

    def __init__(self, stream: OutputWrapper, total_lines: int, remove: bool) -> None:
        self.stream = stream
        self.total = total_lines
        self.remove = remove
        self.started = self.last_line_at = time.monotonic()
        self.bar: tqdm[Any] | None = None
        if stream.isatty():
            self.bar = tqdm(
                total=total_lines,
                unit=" lines",
                unit_scale=True,
                file=TqdmStream(stream),
                dynamic_ncols=True,
            )

    def advance(self, line: int, totals: Totals) -> None:
        if self.bar is not None:
            self.bar.set_postfix_str(totals.describe(self.remove), refresh=False)
            self.bar.update(line - self.bar.n)
            return
        now = time.monotonic()
        if now - self.last_line_at < PROGRESS_EVERY_SECONDS:
            return
        self.last_line_at = now
        rate = line / max(now - self.started, 1e-9)
        left = (self.total - line) / rate if rate else 0
        self.stream.write(
            f"{line:,}/{self.total:,} lines ({line / max(self.total, 1):.0%}), "
            f"{rate:,.0f} lines/s, about {left:,.0f} s left: {totals.describe(self.remove)}"
        )

    def close(self) -> None:
        if self.bar is not None:
            self.bar.update(self.total - self.bar.n)
            self.bar.close()


class Report:
    """The rejected identifiers as CSV rows (line, identifier, reason), written per batch;
    an unreadable record's identifier is left empty (the reader keeps none of it)."""

    def __init__(self, file: TextIO, identifier_type: str) -> None:
        self.writer = csv.writer(file)
        self.writer.writerow(REPORT_HEADER)
        self.normalize = NORMALIZERS[identifier_type]
        self.rows = 0

    def _reason(self, identifier: str) -> str:
        try:
            self.normalize(identifier)
        except InvalidIdentifier as exc:
            return f"invalid: {exc}"
        return "invalid"

    def write(self, batch: list[Item], result: services.BulkResult) -> None:
        first_line: dict[str, int] = {}
        for item in batch:
            if isinstance(item, Line):
                first_line.setdefault(item.identifier, item.number)
        rows = [(first_line[value], value, "not found") for value in result.not_found]
        rows += [(first_line[value], value, self._reason(value)) for value in result.invalid]
        rows += [
            (item.number, "", f"invalid: {item.reason}")
            for item in batch
            if isinstance(item, Unreadable)
        ]
        self.writer.writerows(sorted(rows))
        self.rows += len(rows)


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
            help="Read this column of a CSV file whose first row names the columns (comma or "
            "semicolon separated), instead of one identifier per line.",
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
        total_lines = scan(path)
        change = services.remove_members if remove else services.add_members
        totals = Totals()
        with ExitStack() as stack:
            file = stack.enter_context(path.open(encoding="utf-8-sig", newline=""))
            lines = column_lines(file, column) if column else plain_lines(file)
            rejects = None
            if report is not None:
                try:
                    report_file = stack.enter_context(
                        report.open("w", newline="", encoding="utf-8")
                    )
                except OSError as exc:
                    raise CommandError(f"Cannot write the report {report}: {exc}") from None
                rejects = Report(report_file, identifier_type)
            progress = Progress(self.stderr, total_lines, remove)
            stack.callback(progress.close)
            for batch in batches(lines, batch_size):
                result = change(
                    group=group,
                    identifier_type=identifier_type,
                    identifiers=[item.identifier for item in batch if isinstance(item, Line)],
                    source=Source.IMPORT,
                    actor=ACTOR,
                )
                group = result.group
                totals.identifiers += len(batch)
                totals.changed += result.changed
                totals.unchanged += result.unchanged
                totals.not_found += len(result.not_found)
                totals.invalid += len(result.invalid)
                totals.invalid += sum(isinstance(item, Unreadable) for item in batch)
                if rejects is not None:
                    rejects.write(batch, result)
                progress.advance(batch[-1].number, totals)
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
