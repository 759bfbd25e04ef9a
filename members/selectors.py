"""Reads over members beyond one queryset method."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from django.db import connection
from django.db.models import Exists, OuterRef, Q

from groups.models import ALL_MEMBERS_KEY, MembersGroup, Membership
from loyalty.db import InSubqueryArray, array_param, in_array
from loyalty.models import Club
from members.models import Member
from members.normalize import NORMALIZERS, InvalidIdentifier
from members.services import MEMBER_FIELDS

IDENTIFIER_TYPES = tuple(NORMALIZERS)
# The columns of a member as the API shows it (``members.serializers.member_json``), for
# reads that build their JSON from ``values()`` rows rather than model instances.
MEMBER_COLUMNS = ("id", *MEMBER_FIELDS, "created_at", "updated_at")


@dataclass(frozen=True)
class Resolution:
    """Identifiers resolved to member ids of one club."""

    member_ids: list[int]
    not_found: list[Any]
    invalid: list[Any]


def resolve_identifiers(
    *, club: Club, identifier_type: str, identifiers: Iterable[Any], for_share: bool = False
) -> Resolution:
    """Normalise identifiers and look them up in one query; duplicates count once.

    ``not_found`` and ``invalid`` list identifiers as the caller sent them (the first
    spelling of each normalised value), so a client can match them to its own records.
    ``for_share``: on PostgreSQL, also share-lock the members found until the transaction
    ends, in id order, as ``groups.services.locking.lock_members`` would: one pass over
    them, not two.
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
            f"WHERE club_id = %s AND {in_array(column, sql_type)} ORDER BY id"
            + (" FOR SHARE" if for_share and connection.vendor == "postgresql" else ""),
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


# The reach of a page (offset + rows) the members list filtered by group plans for: its
# first pages. See in_any_group.
PLANNED_REACH = 100


def in_any_group(club_id: int, group_ids: Iterable[int]) -> Q:
    """True for members of club ``club_id`` in any of ``group_ids`` (other clubs' groups
    hold none of them).

    Groups that are a large share of the club are probed, member by member, on the
    membership index ``(club, group, member)``: a page read in the club's order meets their
    members soon. Smaller groups are read first (``InSubqueryArray``): walking the club to
    find a page of them would probe about page x club / groups members (the filter took
    170 ms for a group of 1,000 in a club of 1,000,000; read first, 15 ms), as in
    ``groups.selectors.sorted_members``. The groups' stored counts and the club's (one
    statement) decide.
    """
    ids = set(group_ids)
    counts = MembersGroup.objects.filter(
        Q(pk__in=ids) | Q(system_key=ALL_MEMBERS_KEY), club_id=club_id
    ).values_list("pk", "system_key", "members_count")
    held, club_size, named = 0, 0, []
    for pk, system_key, count in counts:
        if pk in ids:
            named.append(pk)
            held += count
        if system_key == ALL_MEMBERS_KEY:
            club_size = count
    memberships = Membership.objects.filter(club_id=club_id, group_id__in=sorted(named))
    if held * held < PLANNED_REACH * club_size:
        return Q(InSubqueryArray("pk", memberships.values("member_id")))
    return Q(Exists(memberships.filter(member_id=OuterRef("pk"))))


def members_in_groups_count(club: Club, group_ids: list[int]) -> int:
    """How many of the club's members are in any of ``group_ids``: their memberships'
    distinct members, counted on the index ``(club, group, member)`` alone. A membership's
    member is in its club (its foreign keys), so no member row needs reading: counted
    through the members, a group of 100,000 took 0.3 to 1.1 s, mostly a scan of the club."""
    memberships = Membership.objects.filter(club_id=club.pk, group_id__in=group_ids)
    count: int = memberships.values("member_id").distinct().count()
    return count


def stored_members_count(club: Club) -> int:
    """How many members the club has, from its "All members" group's exact stored count
    (``count(*)`` over a club of a million members takes a second)."""
    counts = MembersGroup.objects.filter(club=club, system_key=ALL_MEMBERS_KEY).values_list(
        "members_count", flat=True
    )
    return next(iter(counts), 0)
