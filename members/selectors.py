"""Reads over members beyond one queryset method."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from django.db import connection
from django.db.models import Exists, OuterRef, Q

from groups.models import ALL_MEMBERS_KEY, MembersGroup, Membership
from loyalty.db import array_param, in_array
from loyalty.models import Club
from members.models import Member
from members.normalize import NORMALIZERS, InvalidIdentifier

IDENTIFIER_TYPES = tuple(NORMALIZERS)


@dataclass(frozen=True)
class Resolution:
    """Identifiers resolved to member ids of one club."""

    member_ids: list[int]
    not_found: list[Any]
    invalid: list[Any]


def resolve_identifiers(
    *, club: Club, identifier_type: str, identifiers: Iterable[Any]
) -> Resolution:
    """Normalise identifiers and look them up in one query; duplicates count once.

    ``not_found`` and ``invalid`` list identifiers as the caller sent them (the first
    spelling of each normalised value), so a client can match them to its own records.
    """
    normalize = NORMALIZERS[identifier_type]
    wanted: dict[Any, Any] = {}
    invalid: dict[Any, Any] = {}
    for raw in identifiers:
        try:
            wanted.setdefault(normalize(raw), raw)
        except InvalidIdentifier:
            invalid.setdefault(repr(raw), raw)
    column, sql_type = ("id", "bigint") if identifier_type == "id" else (identifier_type, "text")
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT id, {column} FROM {Member._meta.db_table} "
            f"WHERE club_id = %s AND {in_array(column, sql_type)} ORDER BY id",
            [club.pk, array_param(wanted)],
        )
        rows = cursor.fetchall()
    found = {value for _id, value in rows}
    return Resolution(
        member_ids=[row[0] for row in rows],
        not_found=[raw for value, raw in wanted.items() if value not in found],
        invalid=list(invalid.values()),
    )


def identified_by(term: str) -> Q:
    """Members whose email, msisdn or id is ``term``, read as each kind of identifier it
    can be (normalised): exact lookups on the club-first unique indexes."""
    matches = Q(pk__in=[])
    for field, normalize in NORMALIZERS.items():
        try:
            matches |= Q(**{field: normalize(term)})
        except InvalidIdentifier:
            continue
    return matches


def in_any_group(group_ids: Iterable[int]) -> Exists:
    """True for members in any of ``group_ids``, on the membership index ``(club, member)``."""
    return Exists(
        Membership.objects.filter(
            club_id=OuterRef("club_id"), member_id=OuterRef("pk"), group_id__in=list(group_ids)
        )
    )


def stored_members_count(club: Club) -> int:
    """How many members the club has, from its "All members" group's exact stored count
    (``count(*)`` over a club of a million members takes a second)."""
    counts = MembersGroup.objects.filter(club=club, system_key=ALL_MEMBERS_KEY).values_list(
        "members_count", flat=True
    )
    return next(iter(counts), 0)
