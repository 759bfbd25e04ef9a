"""State changes of API member imports: record one, then run it in the background."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from functools import partial
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from loyalty.errors import InvalidParameters
from loyalty.models import Club
from members.imports import ImportReport, Reject, import_members
from members.models import ImportStatus, MemberImport

# The membership-event source of imported members (groups.models.Source.IMPORT).
IMPORT_SOURCE = "import"
UNEXPECTED_FAILURE = (
    "The import stopped on an unexpected error; the counts and rejected rows are those of "
    "the members written before it."
)


def _taken(import_id: str) -> InvalidParameters:
    return InvalidParameters.field("import_id", "taken", value=import_id)


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

    ``import_id`` is the client's and unique in the club (a new one is made when absent);
    a taken one is refused with 422.
    """
    import_id = import_id or uuid.uuid4().hex
    if MemberImport.objects.filter(club=club, import_id=import_id).exists():
        raise _taken(import_id)
    try:
        with transaction.atomic():
            member_import = MemberImport.objects.create(
                club=club,
                import_id=import_id,
                request_number=request_number,
                operation=operation,
                member_identifier_type=member_identifier_type,
                multi_values_update_mode=multi_values_update_mode,
                payload=list(members),
                actor=actor,
            )
    except IntegrityError as exc:
        # A concurrent request took the same import_id between the check and the insert.
        raise _taken(import_id) from exc
    # Imported here: the tasks module imports this one.
    from members.tasks import run_import_task

    transaction.on_commit(partial(run_import_task.enqueue, import_pk=member_import.pk))
    return member_import


def run_import(*, import_pk: int) -> None:
    """Run a queued import through the import engine, storing its report as it goes.

    Exactly one run claims the import (queued -> running, one conditional UPDATE), so a
    second or concurrent run of the same import does nothing. The engine commits batch by
    batch and the report is stored after each one, so a failed import's counts and rejected
    rows are those of the batches written. The members sent are dropped once it has ended.
    A failure is recorded with a message for the client and raised again, so that the task
    backend keeps the traceback.
    """
    claimed = MemberImport.objects.filter(pk=import_pk, status=ImportStatus.QUEUED).update(
        status=ImportStatus.RUNNING, started_at=timezone.now(), updated_at=timezone.now()
    )
    if not claimed:
        return
    member_import = MemberImport.objects.select_related("club").get(pk=import_pk)
    rejects: list[Reject] = []

    def store_report(report: ImportReport, member_ids: list[int]) -> None:
        member_import.created = report.created
        member_import.updated = report.updated
        member_import.unchanged = report.unchanged
        member_import.rejected = report.rejected
        member_import.rejected_rows = [_rejected_row(member_import, reject) for reject in rejects]
        member_import.save(
            update_fields=[
                "created",
                "updated",
                "unchanged",
                "rejected",
                "rejected_rows",
                "updated_at",
            ]
        )

    try:
        import_members(
            club=member_import.club,
            rows=enumerate(member_import.payload),
            mode=member_import.operation,
            match_by=member_import.member_identifier_type,
            arrays=member_import.multi_values_update_mode,
            source=IMPORT_SOURCE,
            actor=member_import.actor,
            on_reject=rejects.append,
            on_batch=store_report,
        )
    except Exception:
        _finish(member_import, ImportStatus.FAILED, error=UNEXPECTED_FAILURE)
        raise
    _finish(member_import, ImportStatus.DONE)


def _rejected_row(member_import: MemberImport, reject: Reject) -> dict[str, Any]:
    # The member exactly as the client sent it, at its index in the request's array.
    return {
        "index": reject.line,
        "member": member_import.payload[reject.line],
        "reason": reject.reason,
    }


def _finish(member_import: MemberImport, status: str, error: str = "") -> None:
    member_import.status = status
    member_import.error = error
    member_import.finished_at = timezone.now()
    member_import.payload = []
    member_import.save(update_fields=["status", "error", "finished_at", "payload", "updated_at"])
