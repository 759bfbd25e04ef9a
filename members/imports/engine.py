"""The import engine: rows classified and written batch by batch, each in a transaction."""

from __future__ import annotations

import gc
import hashlib
import math
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from itertools import islice
from typing import Any

from django.db import connection

from loyalty.db import in_retried_transaction
from loyalty.models import Club
from members.imports import database
from members.imports.database import Keyed, Stored
from members.imports.merging import Merger
from members.imports.reading import CsvRecord, FileRow, Item, Reject
from members.imports.rows import Invalid, Known, Row, lookup_key, parse_item
from members.models import Member
from members.services import insert_members
from members.signals import members_updated

MODES = ("upsert", "create", "update")
MATCH_BY = ("id", "email", "msisdn")
ARRAYS = ("replace", "append")


@dataclass
class ImportReport:
    """Running counts of an import; ``elapsed`` is in seconds."""

    created: int = 0
    updated: int = 0
    unchanged: int = 0
    rejected: int = 0
    elapsed: float = 0.0

    @property
    def rows(self) -> int:
        return self.created + self.updated + self.unchanged + self.rejected

    @property
    def rate(self) -> float:
        """Rows per second."""
        return self.rows / self.elapsed if self.elapsed > 0 else 0.0


# Part of every fingerprint: bump it when a change of parsing, normalising or merging could
# make a row do something else than before, so that re-imports parse every row again.
FINGERPRINT_VERSION = 1


class _New:
    """A member the batch creates, before it has an id."""

    __slots__ = ("index",)

    def __init__(self, index: int) -> None:
        self.index = index


Owner = int | _New


@dataclass
class _Batch:
    """What one batch writes, and what it reports once committed."""

    # ``insert_members`` rows.
    creates: list[list[Any]]
    changes: list[Stored]
    # The fingerprint of the row behind each change.
    fingerprints: list[str | None]
    # Unchanged members and the fingerprint of their row, to hold from now on.
    confirmed: list[tuple[int, str]]
    unchanged: list[int]
    # In file order: a member id, or the index of a created member.
    imported: list[int | _New]
    seen: list[tuple[int | _New, int]]
    rejects: list[Reject]


class _Importer:
    def __init__(
        self, *, club: Club, mode: str, match_by: str | None, arrays: str, source: str, actor: str
    ) -> None:
        self.club = club
        self.mode = mode
        self.match_by = match_by
        self.merger = Merger(append=arrays == "append")
        self.source = source
        self.actor = actor
        # A row's effect depends on the options too, and on the rules of this code.
        self.salt: bytes | None = f"{FINGERPRINT_VERSION}|{mode}|{match_by}|{arrays}|".encode()
        if mode == "create" or match_by == "id":
            # "create" refuses existing members, and by id an upsert creates the rows
            # without one: a known row would not be unchanged there.
            self.salt = None
        self._prefixes: dict[str, bytes] = {}
        # The id after which the next batch's known members are looked for first.
        self._known_after: int | None = None
        # A club none of whose members came from a file row (the first import into it) has
        # nothing to look up; what this import creates is caught as duplicates anyway.
        self.club_has_fingerprints = (
            self.salt is not None
            and Member.objects.filter(club=club, import_fingerprint__isnull=False).exists()
        )

    # Fingerprints ---------------------------------------------------------------------------

    def _fingerprint(self, row: FileRow | CsvRecord) -> str:
        """The row's text under its header and this import's options, hashed."""
        assert self.salt is not None
        prefix = self._prefixes.get(row.header)
        if prefix is None:
            prefix = self._prefixes[row.header] = self.salt + row.header.encode() + b"\n"
        text = row.text.encode("utf-8", "surrogateescape")
        digest = hashlib.blake2b(prefix + text, digest_size=database.FINGERPRINT_LENGTH // 2)
        return digest.hexdigest()

    def prepare(self, items: list[Item]) -> list[tuple[int, Known | Row | Reject]]:
        """Parse the batch's rows, but for those a member's fingerprint shows are unchanged."""
        # By position: rows given by code need not have distinct line numbers.
        fingerprints: dict[int, str] = {}
        keyed: list[Keyed] = []
        if self.salt is not None:
            for index, (_, row) in enumerate(items):
                if isinstance(row, FileRow | CsvRecord):
                    fingerprints[index] = self._fingerprint(row)
                    key = lookup_key(row) if self.club_has_fingerprints else None
                    if key is not None:
                        keyed.append((fingerprints[index], *key))
        known = database.known(self.club, keyed, self._known_after) if keyed else {}
        # The next batch's known members likely follow this one's (``database.known``),
        # unless this one's did not follow the batch before.
        hits = [pk for pk, _ in known.values()]
        in_order = self._known_after is None or 2 * sum(
            pk > self._known_after for pk in hits
        ) >= len(keyed)
        self._known_after = max(hits) if hits and in_order else None
        prepared: list[tuple[int, Known | Row | Reject]] = []
        for index, (line, row) in enumerate(items):
            fingerprint = fingerprints.get(index)
            hit = known.get(fingerprint) if fingerprint is not None else None
            if hit is not None:
                prepared.append((line, Known(line, hit[0], hit[1], getattr(row, "text", ""))))
                continue
            item = parse_item(line, row)
            if isinstance(item, Row):
                item.fingerprint = fingerprint
            prepared.append((line, item))
        return prepared

    # Classification -----------------------------------------------------------------------

    def classify(self, items: list[tuple[int, Known | Row | Reject]]) -> tuple[_Batch, int]:
        """Decide each row's fate, in file order, as if the rows before it were written.

        Return the batch and how many items it took: a row that takes an email or msisdn
        another member gives up earlier in the same batch waits for the next batch, because
        one UPDATE statement checks uniqueness row by row, in no particular order. So does a
        known row whose member an earlier row of the batch took: that row may have changed
        the member's email or msisdn, and the known row then names someone else.
        """
        rows = [item for _, item in items if isinstance(item, Row)]
        stored = (
            []
            if not rows
            else database.stored(
                self.club,
                [row.email for row in rows if row.email],
                [row.msisdn for row in rows if row.msisdn],
                [row.id for row in rows if row.id],
            )
        )
        members = {member[0]: member[:-1] for member in stored}
        by_email: dict[str, Owner | None] = {m[1]: m[0] for m in stored if m[1] is not None}
        by_msisdn: dict[str, Owner | None] = {m[2]: m[0] for m in stored if m[2] is not None}
        claimed: dict[Owner, int] = {m[0]: m[-1] for m in stored if m[-1] is not None}
        # The members this batch takes, from the rows before the current one.
        taken_here: set[Owner] = set()
        released: set[tuple[str, str]] = set()
        for _, item in items:
            if isinstance(item, Known) and item.seen is not None:
                claimed.setdefault(item.member_id, item.seen)
        batch = _Batch([], [], [], [], [], [], [], [])
        for taken, (line, item) in enumerate(items):
            if isinstance(item, Reject):
                batch.rejects.append(item)
                continue
            if isinstance(item, Known):
                if item.member_id in taken_here:
                    # After this batch, the lookup sees the member as that row left it.
                    return batch, taken
                if item.member_id in claimed:
                    already = claimed[item.member_id]
                    reason = f"duplicate: line {already} already imported this member"
                    batch.rejects.append(Reject(line, item.source, reason))
                    continue
                batch.unchanged.append(item.member_id)
                claimed[item.member_id] = line
                taken_here.add(item.member_id)
                batch.imported.append(item.member_id)
                batch.seen.append((item.member_id, line))
                continue
            try:
                owner: Owner | None = self._owner(item, members, by_email, by_msisdn, claimed)
                if owner is None:
                    owner = _New(len(batch.creates))
                    batch.creates.append(self.merger.new_member(item))
                    for field, index in (("email", by_email), ("msisdn", by_msisdn)):
                        if getattr(item, field) is not None:
                            index[getattr(item, field)] = owner
                else:
                    member = members[owner]
                    for field, value, old in (
                        ("email", item.email, member[1]),
                        ("msisdn", item.msisdn, member[2]),
                    ):
                        if value is not None and value != old and (field, value) in released:
                            return batch, taken
                    change = self.merger.merge(item, member)
                    if change is None:
                        batch.unchanged.append(member[0])
                        if item.fingerprint is not None:
                            batch.confirmed.append((member[0], item.fingerprint))
                    else:
                        batch.changes.append(change)
                        batch.fingerprints.append(item.fingerprint)
                        for field, new, old, index in (
                            ("email", change[1], member[1], by_email),
                            ("msisdn", change[2], member[2], by_msisdn),
                        ):
                            if new != old:
                                if old is not None:
                                    index[old] = None
                                    released.add((field, old))
                                index[new] = owner
            except Invalid as exc:
                batch.rejects.append(Reject(line, item.source, str(exc)))
                continue
            claimed[owner] = line
            taken_here.add(owner)
            batch.imported.append(owner)
            batch.seen.append((owner, line))
        return batch, len(items)

    def _owner(
        self,
        row: Row,
        members: dict[int, Stored],
        by_email: dict[str, Owner | None],
        by_msisdn: dict[str, Owner | None],
        claimed: dict[Owner, int],
    ) -> int | None:
        """The existing member the row updates, None for a new one; raise ``Invalid``."""
        if row.id is not None and row.id not in members:
            raise Invalid(f"no member with id {row.id}")
        found = [
            (name, owner)
            for name, owner in (
                ("email", None if row.email is None else by_email.get(row.email)),
                ("msisdn", None if row.msisdn is None else by_msisdn.get(row.msisdn)),
                ("id", row.id),
            )
            if owner is not None
        ]
        for _, owner in found:
            if owner in claimed:
                raise Invalid(f"duplicate: line {claimed[owner]} already imported this member")
        if self.match_by is None:
            field = found[0][0] if found else "email"
        else:
            field = self.match_by
            # Ids are the service's to give: by id, an upsert creates the rows without one.
            if getattr(row, field) is None and not (field == "id" and self.mode == "upsert"):
                raise Invalid(f"the row has no {field} to match by")
        target = next((owner for name, owner in found if name == field), None)
        for name, owner in found:
            if owner != target:
                if target is not None:
                    mine = f"the {field} to member {target}"
                elif getattr(row, field) is None:
                    mine = f"the row has no {field}"
                else:
                    mine = f"no member has this {field}"
                raise Invalid(f"the {name} belongs to member {owner}, but {mine}")
        if target is None:
            if self.mode == "update":
                label = field if self.match_by else "email or msisdn"
                raise Invalid(f"no member with this {label}")
            return None
        if self.mode == "create":
            raise Invalid(f"a member with this {field} already exists (id {target})")
        assert isinstance(target, int)
        return target

    # Writing ------------------------------------------------------------------------------

    def write(self, batch: _Batch, on_imported: Callable[[list[int]], None] | None) -> list[int]:
        """Write one classified batch; return the ids of its created and updated members."""
        updated = [change[0] for change in batch.changes]
        if batch.changes:
            database.update(self.club, batch.changes, batch.fingerprints)
            members_updated.send(
                sender=Member,
                club=self.club,
                member_ids=updated,
                source=self.source,
                actor=self.actor,
            )
        if batch.confirmed:
            database.confirm(self.club, batch.confirmed)
        created: list[int] = []
        if batch.creates:
            created = insert_members(
                club=self.club, rows=batch.creates, source=self.source, actor=self.actor
            )

        def resolved(owner: int | _New) -> int:
            return created[owner.index] if isinstance(owner, _New) else owner

        if batch.seen:
            database.remember([(resolved(owner), line) for owner, line in batch.seen])
        if on_imported is not None and batch.imported:
            on_imported([resolved(owner) for owner in batch.imported])
        return created + updated


@contextmanager
def _collecting_between_batches() -> Iterator[Callable[[], int]]:
    """Run Python's cyclic garbage collector between batches only; yield the collection.

    A batch's rows live until it commits, so the collector, left to itself, moved them to
    its oldest generation and re-scanned them there every few thousand rows: a sixth of the
    import's time. Collecting only the youngest generation after each batch frees what the
    batch left in reference cycles (a rejected email's ValidationError is one) and scans
    only what the batch allocated.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield partial(gc.collect, 0)
    finally:
        if enabled:
            gc.enable()


def import_members(
    *,
    club: Club,
    rows: Iterable[Item],
    mode: str = "upsert",
    match_by: str | None = None,
    arrays: str = "replace",
    dry_run: bool = False,
    batch_size: int = 5000,
    source: str = "import",
    actor: str = "",
    on_reject: Callable[[Reject], None] | None = None,
    on_batch: Callable[[ImportReport, list[int]], None] | None = None,
    on_imported: Callable[[list[int]], None] | None = None,
) -> ImportReport:
    """Create and update a club's members from ``(line, row)`` pairs, batch by batch.

    ``mode``: "upsert" creates new members and updates the others, "create" rejects rows
    of existing members, "update" rejects rows matching nobody. ``match_by``: None matches
    by email, then msisdn, then id; or only by "id", "email" or "msisdn". Properties and
    consents are merged key by key; ``arrays`` ("replace" or "append") says what a given
    array does to the stored one. A row that would change nothing writes nothing.

    Each batch is one transaction: members written, then their groups re-evaluated through
    the domain signals; an interrupted import leaves whole batches, and running it again
    finishes it; a batch aborted by a deadlock runs again. ``on_imported`` runs inside each
    batch's transaction with the ids of the batch's imported members (created, updated or
    unchanged), in file order, and again if the batch runs again; ``on_reject``
    and ``on_batch`` (the running report and the ids of the batch's created and updated
    members) run after each batch commits. ``dry_run`` does all of it in a transaction
    that is rolled back at the end.
    """
    if mode not in MODES or arrays not in ARRAYS or (match_by and match_by not in MATCH_BY):
        raise ValueError(f"mode {mode!r}, match_by {match_by!r} or arrays {arrays!r} unknown")
    if batch_size < 1:
        raise ValueError("batch_size must be positive")
    started = time.perf_counter()
    report = ImportReport()
    importer = _Importer(
        club=club, mode=mode, match_by=match_by, arrays=arrays, source=source, actor=actor
    )
    rows = iter(rows)
    pending: list[Item] = []
    analyze_at = database.ANALYZE_AFTER if connection.vendor == "postgresql" else math.inf
    with database.scratch(dry_run), _collecting_between_batches() as collect:
        while True:
            pending.extend(islice(rows, batch_size - len(pending)))
            if not pending:
                break

            def run_batch() -> tuple[_Batch, int, list[int]]:
                database.no_jit()
                batch, taken = importer.classify(importer.prepare(pending))
                return batch, taken, importer.write(batch, on_imported)

            # A batch PostgreSQL aborted to break a deadlock (with a concurrent bulk change
            # or member write) left nothing behind, and runs again.
            batch, taken, ids = in_retried_transaction(run_batch)
            del pending[:taken]
            collect()
            report.created += len(batch.creates)
            report.updated += len(batch.changes)
            report.unchanged += len(batch.unchanged)
            report.rejected += len(batch.rejects)
            if report.created >= analyze_at:
                database.refresh_statistics()
                analyze_at = 4 * report.created
            report.elapsed = time.perf_counter() - started
            if on_reject is not None:
                for reject in batch.rejects:
                    on_reject(reject)
            if on_batch is not None:
                on_batch(report, ids)
    report.elapsed = time.perf_counter() - started
    return report
