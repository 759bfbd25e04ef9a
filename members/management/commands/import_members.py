"""``import_members``: create or update a club's members from a CSV or JSON-lines file."""

from __future__ import annotations

import json
from contextlib import ExitStack
from datetime import timedelta
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import IntegrityError

# The one import of groups by members: --group adds the imported members to a manual group
# through the groups service (declared as an exception to the app layers, pyproject.toml).
from groups.management.lookups import manual_group
from groups.services import add_member_ids
from loyalty.management.lookups import club_by_slug
from loyalty.management.progress import Progress, RejectReport
from members.import_services import IMPORT_SOURCE
from members.imports import ARRAYS, MATCH_BY, MODES, ImportReport, Reject, import_members, read_rows

ACTOR = "import_members"
# Seconds between two progress lines when the output is not a terminal.
PROGRESS_INTERVAL = 10.0
# Rejected rows listed in the summary when there is no --reject-file.
SHOWN_REJECTS = 10


def row_text(reject: Reject) -> str:
    """A rejected row as the reject file shows it: its text, or its JSON."""
    row = reject.row
    return row if isinstance(row, str) else json.dumps(row, ensure_ascii=False, default=str)


class Command(BaseCommand):
    help = (
        "Create or update a club's members from a CSV or JSON-lines file, in batches of one "
        "transaction each. A row matches a member by email, else msisdn, else id (or by what "
        "--update-by names); new members are created, matched ones updated where the row "
        "changes them. Rejected rows are reported with their line and reason. Running the "
        "same file again changes nothing. The file formats are described in docs/imports.md."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("club_slug", help="The club the members belong to.")
        parser.add_argument("path", type=Path, help="A CSV or JSON-lines file.")
        parser.add_argument(
            "--update-by",
            choices=MATCH_BY,
            help="Match rows to members by this identifier only "
            "(default: email, else msisdn, else id).",
        )
        parser.add_argument(
            "--mode",
            choices=MODES,
            default="upsert",
            help="upsert (default): create and update; create: reject rows of existing "
            "members; update: reject rows that match no member.",
        )
        parser.add_argument(
            "--arrays",
            choices=ARRAYS,
            default="replace",
            help="What a given array (subunit_ids, favorite_stores, array properties) does "
            "to the stored one: replace it (default) or append its new items.",
        )
        parser.add_argument(
            "--dry-run", action="store_true", help="Report what would happen; write nothing."
        )
        parser.add_argument(
            "--group",
            type=int,
            metavar="ID",
            help="Also add every imported member (created, updated or unchanged) to this "
            "manual group of the club.",
        )
        parser.add_argument(
            "--reject-file",
            type=Path,
            metavar="PATH",
            help="Write the rejected rows here as CSV: line, row, reason.",
        )
        parser.add_argument(
            "--batch-size",
            type=int,
            default=5000,
            help="Rows per transaction (default 5000).",
        )

    def handle(
        self,
        *args: Any,
        club_slug: str,
        path: Path,
        update_by: str | None,
        mode: str,
        arrays: str,
        dry_run: bool,
        group: int | None,
        reject_file: Path | None,
        batch_size: int,
        **options: Any,
    ) -> None:
        club = club_by_slug(club_slug)
        manual = manual_group(club, group) if group is not None else None
        if not path.is_file():
            raise CommandError(f"No file {path}.")
        if batch_size < 1:
            raise CommandError("--batch-size must be positive.")
        reader = read_rows(path)
        progress = Progress(
            self.stdout,
            total=reader.size,
            every=PROGRESS_INTERVAL,
            unit="B",
            unit_scale=True,
            unit_divisor=1024,
            desc="Importing",
        )
        shown: list[Reject] = []
        added = batch_added = 0

        def add_to_group(member_ids: list[int]) -> None:
            # In the batch's transaction, again if it is retried: counted once it commits.
            nonlocal batch_added
            assert manual is not None
            batch_added = add_member_ids(
                group=manual, member_ids=member_ids, source=IMPORT_SOURCE, actor=ACTOR
            )

        def batch_done(report: ImportReport, member_ids: list[int]) -> None:
            nonlocal added, batch_added
            added, batch_added = added + batch_added, 0

            def plain(done: float, left: float) -> str:
                return (
                    f"{report.rows:,} rows ({done:.0%} of the file): {report.created:,} created, "
                    f"{report.updated:,} updated, {report.unchanged:,} unchanged, "
                    f"{report.rejected:,} rejected; {report.rate:,.0f} rows/s, "
                    f"about {timedelta(seconds=round(left))} left"
                )

            progress.advance(
                reader.bytes_read,
                f"{report.rows:,} rows, {report.rate:,.0f} rows/s, {report.rejected:,} rejected",
                plain,
            )

        with ExitStack() as stack:
            stack.callback(progress.close)
            if reject_file is not None:
                # Bytes that are not UTF-8 go back to the file as they came.
                file = stack.enter_context(
                    reject_file.open("w", newline="", encoding="utf-8", errors="surrogateescape")
                )
                reject_report = RejectReport(file, ("line", "row", "reason"))

                def on_reject(reject: Reject) -> None:
                    reject_report.write([(reject.line, row_text(reject), reject.reason)])

            else:

                def on_reject(reject: Reject) -> None:
                    if len(shown) < SHOWN_REJECTS:
                        shown.append(reject)

            try:
                report = import_members(
                    club=club,
                    rows=reader,
                    mode=mode,
                    match_by=update_by,
                    arrays=arrays,
                    dry_run=dry_run,
                    batch_size=batch_size,
                    source=IMPORT_SOURCE,
                    actor=ACTOR,
                    on_reject=on_reject,
                    on_batch=batch_done,
                    on_imported=add_to_group if manual is not None else None,
                )
            except IntegrityError as exc:
                raise CommandError(
                    "A batch collided with a change made meanwhile and was rolled back; the "
                    f"batches before it are imported. Run the command again to finish. ({exc})"
                ) from exc
            except KeyboardInterrupt:
                raise CommandError(
                    "Interrupted. "
                    + (
                        "Nothing was written (dry run)."
                        if dry_run
                        else "The batches committed so far are imported: run the same command "
                        "again to finish."
                    ),
                    returncode=130,
                ) from None
        self.summarise(report, dry_run, manual.name if manual else None, added, shown, reject_file)

    def summarise(
        self,
        report: ImportReport,
        dry_run: bool,
        group_name: str | None,
        added: int,
        shown: list[Reject],
        reject_file: Path | None,
    ) -> None:
        if dry_run:
            self.stdout.write("Dry run: nothing was written. The import would give:")
        self.stdout.write(
            f"Created {report.created:,}, updated {report.updated:,}, unchanged "
            f"{report.unchanged:,}, rejected {report.rejected:,} in {report.elapsed:.2f} s "
            f"({report.rate:,.0f} rows/s)."
        )
        if group_name is not None:
            self.stdout.write(f'Added {added:,} members to the group "{group_name}".')
        if report.rejected and reject_file is not None:
            self.stdout.write(f"Rejected rows are in {reject_file}.")
        elif shown:
            if report.rejected > len(shown):
                self.stdout.write(
                    f"The first {len(shown)} rejected rows (--reject-file lists all):"
                )
            else:
                self.stdout.write("Rejected rows:")
            for reject in shown:
                self.stdout.write(f"  line {reject.line}: {reject.reason}")
        style = self.style.WARNING if report.rejected else self.style.SUCCESS
        self.stdout.write(style("Done."))
