"""State changes of members. Group memberships follow through the domain signals."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from functools import cache
from typing import Any

from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from loyalty.errors import InvalidParameters
from loyalty.models import Club
from members.models import Member
from members.normalize import InvalidIdentifier, normalize_email, normalize_msisdn
from members.signals import member_deleting, member_saved, members_created

# Fields a caller may set; everything else (id, club, timestamps) is the service's.
MEMBER_FIELDS = (
    "email",
    "msisdn",
    "properties",
    "consents",
    "sms_status",
    "email_status",
    "push_status",
    "subunit_ids",
    "favorite_stores",
)


def normalize_member(member: Member) -> None:
    """Normalise email and msisdn in place; raise ``InvalidParameters`` naming the field."""
    details: dict[str, Any] = {}
    for field, normalize in (("email", normalize_email), ("msisdn", normalize_msisdn)):
        value = getattr(member, field)
        if value in (None, ""):
            setattr(member, field, None)
            continue
        try:
            setattr(member, field, normalize(value))
        except InvalidIdentifier:
            details[field] = [{"error": "invalid", "options": {"value": value}}]
    if not details and member.email is None and member.msisdn is None:
        details["email"] = [{"error": "blank", "options": {"requires": "email or msisdn"}}]
    if details:
        raise InvalidParameters(details=details)


def _check_unique(member: Member) -> None:
    others = Member.objects.filter(club_id=member.club_id).exclude(pk=member.pk)
    details: dict[str, Any] = {}
    for field in ("email", "msisdn"):
        value = getattr(member, field)
        if value is not None and others.filter(**{field: value}).exists():
            details[field] = [{"error": "taken", "options": {"value": value}}]
    if details:
        raise InvalidParameters(details=details)


def _save(member: Member) -> None:
    normalize_member(member)
    # No longer what an import file row made it: a re-import of that row must apply again.
    member.import_fingerprint = None
    _check_unique(member)
    try:
        with transaction.atomic():
            member.save()
    except IntegrityError as exc:
        # A concurrent request took the same email or msisdn between the check and the write.
        raise InvalidParameters.field("email", "taken") from exc


@transaction.atomic
def create_member(*, club: Club, source: str, actor: str = "", **fields: Any) -> Member:
    """Create a member and put it in the groups it belongs to, in one transaction."""
    member = Member(club=club, **{k: v for k, v in fields.items() if k in MEMBER_FIELDS})
    _save(member)
    member_saved.send(sender=Member, member=member, created=True, source=source, actor=actor)
    return member


@transaction.atomic
def update_member(*, member: Member, source: str, actor: str = "", **fields: Any) -> Member:
    """Change a member's fields; automatic groups are re-evaluated for it in the same request."""
    for field, value in fields.items():
        if field in MEMBER_FIELDS:
            setattr(member, field, value)
    _save(member)
    member_saved.send(sender=Member, member=member, created=False, source=source, actor=actor)
    return member


@transaction.atomic
def delete_member(*, member: Member, source: str, actor: str = "") -> None:
    """Delete a member; receivers first record its leaves and fix the group counts."""
    member_deleting.send(sender=Member, member=member, source=source, actor=actor)
    member.delete()


INSERT_COLUMNS = ("club_id", "created_at", "updated_at", *MEMBER_FIELDS, "import_fingerprint")
JSON_FIELDS = frozenset({"properties", "consents", "subunit_ids", "favorite_stores"})
# SQLite's smallest bound-parameter limit (SQLITE_MAX_VARIABLE_NUMBER before 3.32).
SQLITE_MAX_PARAMS = 999


def _json(value: Any) -> str:
    # Most members have no consents, subunits or favourite stores: skip the encoder.
    if value == {}:
        return "{}"
    if value == []:
        return "[]"
    return json.dumps(value)


def _row(member: Member) -> list[Any]:
    """The member's INSERT_COLUMNS values, JSON as text."""
    return [
        _json(getattr(member, column)) if column in JSON_FIELDS else getattr(member, column)
        for column in INSERT_COLUMNS
    ]


def _insert(members: Sequence[Member]) -> list[int]:
    """Insert the rows as they are, timestamps included; return their ids in order.

    Django's ``bulk_create`` would overwrite ``created_at`` (``auto_now_add``), which an
    import or a demo sets itself, and on PostgreSQL ``COPY`` is about 4x faster.
    """
    table = Member._meta.db_table
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            # The sequence looked up once ("OFFSET 0" keeps the subquery from being inlined):
            # pg_get_serial_sequence() for every row took ten times as long.
            cursor.execute(
                "SELECT nextval(s.seq) FROM (SELECT pg_get_serial_sequence(%s, 'id')::regclass "
                "AS seq OFFSET 0) s, generate_series(1, %s)",
                [table, len(members)],
            )
            ids = [row[0] for row in cursor.fetchall()]
            columns = ", ".join(("id", *INSERT_COLUMNS))
            # Values go as text, which COPY parses into each column's type: a third of the
            # time of psycopg's typed adapters (Jsonb, datetime) for every row.
            iso = cache(datetime.isoformat)
            with cursor.cursor.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
                for pk, member in zip(ids, members, strict=True):
                    row = _row(member)
                    row[1], row[2] = iso(row[1]), iso(row[2])
                    copy.write_row([pk, *row])
            return ids
        adapt = connection.ops.adapt_datetimefield_value
        ids = []
        per_statement = SQLITE_MAX_PARAMS // len(INSERT_COLUMNS)
        placeholders = f"({', '.join(['%s'] * len(INSERT_COLUMNS))})"
        for start in range(0, len(members), per_statement):
            chunk = members[start : start + per_statement]
            params: list[Any] = []
            for member in chunk:
                row = _row(member)
                row[1], row[2] = adapt(row[1]), adapt(row[2])
                params.extend(row)
            cursor.execute(
                f"INSERT INTO {table} ({', '.join(INSERT_COLUMNS)}) VALUES "
                f"{', '.join([placeholders] * len(chunk))} RETURNING id",
                params,
            )
            ids.extend(row[0] for row in cursor.fetchall())
        return ids


@transaction.atomic
def bulk_create_members(
    *, club: Club, members: Sequence[Member], source: str, actor: str = ""
) -> list[int]:
    """Insert already-normalised members and put them in their groups, set-based.

    ``created_at`` and ``updated_at`` default to now; an import or a demo may set them.
    """
    now = timezone.now()
    for member in members:
        member.club = club
        member.created_at = member.created_at or now
        member.updated_at = member.updated_at or member.created_at
    ids = _insert(members)
    for pk, member in zip(ids, members, strict=True):
        member.pk = pk
    members_created.send(sender=Member, club=club, member_ids=ids, source=source, actor=actor)
    return ids
