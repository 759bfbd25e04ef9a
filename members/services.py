"""State changes of members. Group memberships follow through the domain signals."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from functools import cache
from typing import Any, cast

from django.db import IntegrityError, connection, transaction
from django.db.models import Field
from django.utils import timezone

from loyalty.errors import InvalidParameters
from loyalty.models import Club
from members.models import STORED_IDENTIFIERS, Member
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
    """Refuse an email or msisdn another member of the club has: only those that differ
    from the member's as read from the database are looked up (the others are its own)."""
    stored = getattr(member, "stored_identifiers", {})
    others = Member.objects.filter(club_id=member.club_id).exclude(pk=member.pk)
    details: dict[str, Any] = {}
    for field in STORED_IDENTIFIERS:
        value = getattr(member, field)
        if (
            value is not None
            and value != stored.get(field)
            and others.filter(**{field: value}).exists()
        ):
            details[field] = [{"error": "taken", "options": {"value": value}}]
    if details:
        raise InvalidParameters(details=details)


def _save(member: Member) -> None:
    """Normalise, check and write the member; the caller's transaction (with its savepoint)
    is the one the write runs in."""
    normalize_member(member)
    # No longer what an import file row made it: a re-import of that row must apply again.
    member.import_fingerprint = None
    _check_unique(member)
    try:
        member.save()
    except IntegrityError as exc:
        # A concurrent request took the same email or msisdn between the check and the write.
        raise InvalidParameters.field("email", "taken") from exc
    member.stored_identifiers = {field: getattr(member, field) for field in STORED_IDENTIFIERS}


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


def merge_patch(target: Any, patch: Any) -> Any:
    """``patch`` applied to ``target`` by JSON Merge Patch (RFC 7396): an object's given keys
    are set, a null removes one, the others stay, nested objects merge alike; any other
    value (an array too) replaces the target whole."""
    if not isinstance(patch, dict):
        return patch
    merged = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = merge_patch(merged.get(key), value)
    return merged


# What PATCH merges into the stored value rather than replaces.
MERGED_FIELDS = ("properties", "consents")


def patch_member(*, member: Member, source: str, actor: str = "", **fields: Any) -> Member:
    """Change the given fields, merging ``properties`` and ``consents`` into the stored ones
    (JSON Merge Patch: ``null`` removes a key); the fields not given keep their value."""
    for field in MERGED_FIELDS:
        if field in fields:
            fields[field] = merge_patch(getattr(member, field), fields[field])
    return update_member(member=member, source=source, actor=actor, **fields)


def replace_member(*, member: Member, source: str, actor: str = "", **fields: Any) -> Member:
    """Replace every writable field: those not given go back to their defaults (no email or
    msisdn, empty properties, consents and arrays, the default statuses)."""
    defaults = {
        name: cast("Field[Any, Any]", Member._meta.get_field(name)).get_default()
        for name in MEMBER_FIELDS
    }
    return update_member(member=member, source=source, actor=actor, **{**defaults, **fields})


@transaction.atomic
def delete_member(*, member: Member, source: str, actor: str = "") -> None:
    """Delete a member; receivers first record its leaves and fix the group counts."""
    member_deleting.send(sender=Member, member=member, source=source, actor=actor)
    member.delete()


# A new member as ``insert_members`` takes it: the timestamps (None: now), then the values.
NEW_ROW_COLUMNS = ("created_at", "updated_at", *MEMBER_FIELDS, "import_fingerprint")
INSERT_COLUMNS = ("club_id", *NEW_ROW_COLUMNS)
JSON_FIELDS = frozenset({"properties", "consents", "subunit_ids", "favorite_stores"})
# SQLite's smallest bound-parameter limit (SQLITE_MAX_VARIABLE_NUMBER before 3.32).
SQLITE_MAX_PARAMS = 999


def json_text(value: Any) -> str:
    """A JSON column's value as text; most members have no consents, subunits or
    favourite stores, and those skip the encoder."""
    if value == {}:
        return "{}"
    if value == []:
        return "[]"
    return json.dumps(value)


def _insert(club: Club, rows: Sequence[Sequence[Any]], now: datetime) -> list[int]:
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
                [table, len(rows)],
            )
            ids = [row[0] for row in cursor.fetchall()]
            columns = ", ".join(("id", *INSERT_COLUMNS))
            # Values go as text, which COPY parses into each column's type: a third of the
            # time of psycopg's typed adapters (Jsonb, datetime) for every row.
            iso = cache(datetime.isoformat)
            with cursor.cursor.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
                for pk, (created, updated, *values) in zip(ids, rows, strict=True):
                    created = iso(created or now)
                    copy.write_row(
                        (pk, club.pk, created, iso(updated) if updated else created, *values)
                    )
            return ids
        adapt = connection.ops.adapt_datetimefield_value
        ids = []
        per_statement = SQLITE_MAX_PARAMS // len(INSERT_COLUMNS)
        placeholders = f"({', '.join(['%s'] * len(INSERT_COLUMNS))})"
        for start in range(0, len(rows), per_statement):
            chunk = rows[start : start + per_statement]
            params: list[Any] = []
            for created, updated, *values in chunk:
                created = adapt(created or now)
                params.extend((club.pk, created, adapt(updated) if updated else created, *values))
            cursor.execute(
                f"INSERT INTO {table} ({', '.join(INSERT_COLUMNS)}) VALUES "
                f"{', '.join([placeholders] * len(chunk))} RETURNING id",
                params,
            )
            ids.extend(row[0] for row in cursor.fetchall())
        return ids


@transaction.atomic
def insert_members(
    *, club: Club, rows: Sequence[Sequence[Any]], source: str, actor: str = ""
) -> list[int]:
    """Insert already-normalised members, given as ``NEW_ROW_COLUMNS`` rows with JSON as
    text, and put them in their groups, set-based; return their ids in order.

    A timestamp left None is now; an ``updated_at`` left None is the ``created_at``.
    """
    ids = _insert(club, rows, timezone.now())
    members_created.send(sender=Member, club=club, member_ids=ids, source=source, actor=actor)
    return ids


def bulk_create_members(
    *, club: Club, members: Sequence[Member], source: str, actor: str = ""
) -> list[int]:
    """``insert_members`` for model instances, which get their ids, club and timestamps."""
    now = timezone.now()
    for member in members:
        member.club = club
        member.created_at = member.created_at or now
        member.updated_at = member.updated_at or member.created_at
    rows = [
        [
            json_text(getattr(member, column)) if column in JSON_FIELDS else getattr(member, column)
            for column in NEW_ROW_COLUMNS
        ]
        for member in members
    ]
    ids = insert_members(club=club, rows=rows, source=source, actor=actor)
    for pk, member in zip(ids, members, strict=True):
        member.pk = pk
    return ids
