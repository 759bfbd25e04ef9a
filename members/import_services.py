"""State changes of API member imports: record one, then run it in the background."""

from __future__ import annotations

import json
import math
import re
import uuid
from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import DateTimeField, Q, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from loyalty.api.fields import unstorable
from loyalty.background import enqueue_after_commit
from loyalty.db import in_retried_transaction
from loyalty.errors import InvalidParameters
from loyalty.models import Club
from members.imports import Reject, import_members
from members.imports import database as import_database
from members.imports.reading import Item
from members.models import ImportStatus, MemberImport

# The membership-event source of imported members (groups.models.Source.IMPORT).
IMPORT_SOURCE = "import"
UNEXPECTED_FAILURE = (
    "The import stopped on an unexpected error; the counts and rejected rows are those of "
    "the members written before it."
)
# Rows of one batch: one transaction, holding its members and the import's report.
BATCH_SIZE = 5000
_SURROGATE = re.compile("[\ud800-\udfff]")


def _taken(import_id: str) -> InvalidParameters:
    return InvalidParameters.field("import_id", "taken", value=import_id)


def _stale_before() -> datetime:
    """Queued or running imports last written before this are taken to have lost their run.

    A run writes its import (``updated_at``) with every batch, and keeps it locked while
    it runs one; a run that died leaves it as it was. A queued import's task may only be
    late: then the first run claims it and the other does nothing.
    """
    return timezone.now() - timedelta(seconds=settings.MEMBER_IMPORT_STALE_SECONDS)


def _stored(rows: Sequence[Mapping[str, Any]]) -> list[Any]:
    """The members as stored: a row jsonb cannot hold (a lone surrogate, a number too large
    for a float) as its JSON text, which gives it back as sent, for the engine to reject."""
    return [json.dumps(row) if unstorable(row) else row for row in rows]


def _sent(row: Any) -> Any:
    return json.loads(row) if isinstance(row, str) else row


def _shown(value: Any) -> Any:
    """A JSON value as jsonb and the renderer take it: a lone surrogate as U+FFFD, an
    infinite number as the string "Infinity" or "-Infinity"."""
    if isinstance(value, str):
        return _SURROGATE.sub("\ufffd", value)
    if isinstance(value, float) and not math.isfinite(value):
        return json.dumps(value)
    if isinstance(value, dict):
        return {_shown(key): _shown(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_shown(item) for item in value]
    return value


@transaction.atomic
def create_import(
    *,
    club: Club,
    operation: str,
    members: Sequence[Mapping[str, Any]],
    member_identifier_type: str,
    multi_values_update_mode: str,
    import_id: str | None = None,
    request_number: int | None = None,
    actor: str = "",
) -> MemberImport:
    """Record an import (its members kept until it has run) and run it once committed.

    ``import_id`` is the client's and unique in the club (a new one is made when absent).
    A taken one is refused with 422, but for the same import sent again once its run has
    died (see ``run_import``): that runs it again, and the import is answered as it stands.
    """
    import_id = import_id or uuid.uuid4().hex
    fields = {
        "request_number": request_number,
        "operation": operation,
        "member_identifier_type": member_identifier_type,
        "multi_values_update_mode": multi_values_update_mode,
        "payload": _stored(members),
    }
    member_import = MemberImport.objects.filter(club=club, import_id=import_id).first()
    if member_import is None:
        try:
            with transaction.atomic():
                member_import = MemberImport.objects.create(
                    club=club, import_id=import_id, actor=actor, **fields
                )
        except IntegrityError as exc:
            # A concurrent request took the same import_id between the check and the insert.
            raise _taken(import_id) from exc
    elif not (
        member_import.status in (ImportStatus.QUEUED, ImportStatus.RUNNING)
        and member_import.updated_at < _stale_before()
        and all(getattr(member_import, name) == value for name, value in fields.items())
    ):
        raise _taken(import_id)
    enqueue_after_commit(
        f"the run of import {member_import.import_id!r}",
        partial(_enqueue_run, member_import.pk),
        swept_by="resume-stalled-work",
    )
    return member_import


def _enqueue_run(import_pk: int) -> None:
    # Imported here: the tasks module imports this one.
    from members.tasks import run_import_task

    run_import_task.enqueue(import_pk=import_pk)


def resume_stale_imports() -> list[MemberImport]:
    """Enqueue a run of every import whose run died (queued or running, not written for
    MEMBER_IMPORT_STALE_SECONDS), and return them.

    Each is claimed first: queued again and its clock restarted, in one conditional UPDATE,
    so that a sweep while the queue is backed up adds no second task for it, and the run
    claims it as a queued one (see ``run_import``). A live run holds its import locked
    while it runs a batch and writes it with each, so the claim never takes it from one.
    """
    stale = (
        MemberImport.objects.filter(
            status__in=(ImportStatus.QUEUED, ImportStatus.RUNNING),
            updated_at__lt=_stale_before(),
        )
        .select_related("club")
        .only("import_id", "club__slug", "status", "updated_at")
        .order_by("pk")
    )
    claimed = []
    for member_import in stale:
        if MemberImport.objects.filter(
            pk=member_import.pk,
            status__in=(ImportStatus.QUEUED, ImportStatus.RUNNING),
            updated_at__lt=_stale_before(),
        ).update(status=ImportStatus.QUEUED, updated_at=timezone.now()):
            _enqueue_run(member_import.pk)
            claimed.append(member_import)
    return claimed


def run_import(*, import_pk: int) -> None:
    """Run an import through the import engine, batch by batch, storing its report as it goes.

    A run claims the import with one conditional UPDATE: a queued one, or a running one
    whose run died (not written for MEMBER_IMPORT_STALE_SECONDS), so a second or concurrent
    run of a live import does nothing. Each batch commits its members together with the
    import's counts, rejected rows and ``members_taken``: a run that dies leaves whole
    batches, reported, and the run that takes over goes on from the first row not
    committed, to the report an uninterrupted run gives. The members sent are dropped once
    it has ended. A failure is recorded with a message for the client and raised again, so
    that the task backend keeps the traceback.
    """
    now = timezone.now()
    claimed = MemberImport.objects.filter(
        Q(status=ImportStatus.QUEUED)
        | Q(status=ImportStatus.RUNNING, updated_at__lt=_stale_before()),
        pk=import_pk,
    ).update(
        status=ImportStatus.RUNNING,
        started_at=Coalesce("started_at", Value(now), output_field=DateTimeField()),
        updated_at=now,
    )
    if not claimed:
        return
    try:
        # A batch aborted by a deadlock runs again, the import's report with it.
        while in_retried_transaction(partial(_run_batch, import_pk)):
            pass
    except Exception:
        MemberImport.objects.filter(pk=import_pk, status=ImportStatus.RUNNING).update(
            status=ImportStatus.FAILED,
            error=UNEXPECTED_FAILURE,
            finished_at=timezone.now(),
            updated_at=timezone.now(),
            payload=[],
            members_taken=[],
        )
        raise


def _run_batch(import_pk: int) -> bool:
    """Run the import's next batch, in the caller's transaction; return whether rows remain.

    The import stays locked until the batch commits: a run claiming it meanwhile waits and
    then finds it alive, and no two runs ever run a batch of it at once.
    """
    member_import = MemberImport.objects.select_for_update().get(pk=import_pk)
    if member_import.status != ImportStatus.RUNNING:
        return False
    start = member_import.rows_run
    stop = min(start + BATCH_SIZE, len(member_import.payload))
    rejects: list[Reject] = []
    imported: list[int] = []
    report = import_members(
        club=member_import.club,
        rows=_rows(member_import, start, stop),
        mode=member_import.operation,
        match_by=member_import.member_identifier_type,
        arrays=member_import.multi_values_update_mode,
        batch_size=BATCH_SIZE,
        source=IMPORT_SOURCE,
        actor=member_import.actor,
        on_reject=rejects.append,
        on_imported=imported.extend,
    )
    rejected = {reject.line for reject in rejects}
    lines = [line for line in range(start, stop) if line not in rejected]
    member_import.members_taken += [
        [member_id, line] for member_id, line in zip(imported, lines, strict=True)
    ]
    member_import.created += report.created
    member_import.updated += report.updated
    member_import.unchanged += report.unchanged
    member_import.rejected += report.rejected
    member_import.rejected_rows += [_rejected_row(member_import, reject) for reject in rejects]
    fields = ["created", "updated", "unchanged", "rejected", "rejected_rows", "updated_at"]
    if stop < len(member_import.payload):
        member_import.save(update_fields=[*fields, "members_taken"])
        return True
    member_import.status = ImportStatus.DONE
    member_import.finished_at = timezone.now()
    member_import.payload = []
    member_import.members_taken = []
    member_import.save(update_fields=[*fields, "members_taken", "status", "finished_at", "payload"])
    return False


def _rows(member_import: MemberImport, start: int, stop: int) -> Iterator[Item]:
    # The engine reads the first row once it has made its scratch tables: the members the
    # earlier batches took go in first, so that a later row naming one is a duplicate, as
    # in one run of all the rows.
    if member_import.members_taken:
        import_database.remember([(member, line) for member, line in member_import.members_taken])
    for line in range(start, stop):
        yield line, _sent(member_import.payload[line])


def _rejected_row(member_import: MemberImport, reject: Reject) -> dict[str, Any]:
    # The member as the client sent it, at its index in the request's array.
    return {
        "index": reject.line,
        "member": _shown(_sent(member_import.payload[reject.line])),
        "reason": reject.reason,
    }
