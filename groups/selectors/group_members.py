"""Who is in a group: pages of its members, now or at a moment, and how many."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any

from django.db import router
from django.db.models import Case, Count, Exists, OuterRef, Q, QuerySet, Sum, Value, When

from groups.models import ALL_MEMBERS_KEY, EventKind, MembersGroup, Membership, MembershipEvent
from loyalty.db_decoding import CompiledRows, value_rows
from loyalty.models import Club
from members.models import Member
from members.selectors import MEMBER_COLUMNS, identified_by

# What the pages of a group's members read of the group (to choose their plan and total).
PAGED_GROUP_FIELDS = ("id", "club_id", "members_count", "system_key")


def group_row(club_id: int, group_id: int, columns: tuple[str, ...]) -> dict[str, Any] | None:
    """The club's group ``group_id`` as a row of ``columns`` (``values()`` names), or None.

    The statement is compiled once per set of columns (``CompiledRows``): a show of a group
    and each page of its members look it up.
    """
    rows = _group_lookup(columns)(club_id, group_id)
    return rows[0] if rows else None


@lru_cache(maxsize=16)
def _group_lookup(columns: tuple[str, ...]) -> CompiledRows:
    return CompiledRows(
        MembersGroup,
        2,
        lambda club, pk: MembersGroup.objects.filter(club_id=club, pk=pk).values(*columns),
    )


def paged_group(club_id: int, group_id: int) -> MembersGroup | None:
    """The club's group whose members a page reads, its other fields deferred; or None."""
    row = group_row(club_id, group_id, PAGED_GROUP_FIELDS)
    if row is None:
        return None
    names = [field.attname for field in MembersGroup._meta.concrete_fields if field.attname in row]
    db = router.db_for_read(MembersGroup)
    return MembersGroup.from_db(db, names, [row[name] for name in names])


@dataclass(frozen=True)
class MembersPage:
    # Rows of ``members.selectors.MEMBER_COLUMNS``, in the page's order.
    members: list[dict[str, Any]]
    # The last id of this page when more follow (the next page's after_id), else None.
    next_after_id: int | None
    # Whether no member comes before this page.
    is_first: bool


def member_ids_at(group: MembersGroup, at: datetime) -> QuerySet[Any]:
    """The ids of the group's members at ``at``, rebuilt from its events: a member was in
    the group when its joins up to then outnumber its leaves (they alternate)."""
    net = Sum(Case(When(kind=EventKind.JOINED, then=Value(1)), default=Value(-1)))
    return (
        MembershipEvent.objects.filter(club_id=group.club_id, group_id=group.pk, created_at__lte=at)
        .values("member_id")
        .annotate(net=net)
        .filter(net__gt=0)
    )


def filtered_group_members_count(
    *, group: MembersGroup, only: QuerySet[Member], at: datetime | None = None
) -> int:
    """How many of the group's members (at ``at``, else now) ``only`` holds: counted."""
    memberships: QuerySet[Any] = (
        Membership.objects.filter(club_id=group.club_id, group_id=group.pk)
        if at is None
        else member_ids_at(group, at)
    )
    return memberships.filter(member_id__in=only.values("pk")).count()


def group_members_count_at(*, group: MembersGroup, at: datetime) -> int:
    """The number of the group's members at ``at``: its joins up to then less its leaves.

    A member's events alternate, starting with a join (pruning keeps that: see
    ``ledger.prune_events``), so each member's events up to ``at`` add up to 1 (in) or 0
    (out), and their sum over the group is the count of ``member_ids_at``. One plain
    aggregate over the group's events up to ``at``, with no grouping per member: 0.15-0.3 s
    over 2,000,000 events where grouping took 0.6-4 s (bench/ledger.py).
    """
    counts = MembershipEvent.objects.filter(
        club_id=group.club_id, group_id=group.pk, created_at__lte=at
    ).aggregate(
        joins=Count("id", filter=Q(kind=EventKind.JOINED)),
        leaves=Count("id", filter=Q(kind=EventKind.LEFT)),
    )
    joins: int = counts["joins"]
    leaves: int = counts["leaves"]
    return max(joins - leaves, 0)


def group_members_page(
    *,
    group: MembersGroup,
    per_page: int,
    offset: int = 0,
    after_id: int | None = None,
    descending: bool = False,
    at: datetime | None = None,
    only: QuerySet[Member] | None = None,
) -> MembersPage:
    """One page of a group's members, ordered by id; with ``at``, as they were then; with
    ``only``, those of the group's members it holds.

    The ids are paged on the membership table's unique index ``(club, group, member)``
    alone and only then joined to their member rows: with ``after_id`` (key-set: the ids
    after it in the sort order, 0 to start) a page costs the same at any depth, and with
    ``offset`` the skipped entries are index entries, not rows (PERFORMANCE.md). A member
    deleted since ``at`` has no row left and is left out of the page.
    """
    walk = _Walk(descending=descending, offset=offset, per_page=per_page, keyset=bool(after_id))

    def memberships() -> QuerySet[Any]:
        found: QuerySet[Any] = (
            Membership.objects.filter(club_id=group.club_id, group_id=group.pk)
            if at is None
            else member_ids_at(group, at)
        )
        return found if only is None else found.filter(member_id__in=only.values("pk"))

    if at is None:
        if only is None:
            # The page of most requests: its statement compiled once per shape.
            ids = (group.club_id, group.pk, after_id) if walk.keyset else (group.club_id, group.pk)
            members = _compiled_page(walk)(*ids)
        else:
            members = value_rows(walk.rows(group.club_id, memberships(), after_id))
        return walk.page(members, [row["id"] for row in members], memberships, after_id)
    # A member deleted since ``at`` has no row left: the ids tell whether more follow.
    page_ids = [row["member_id"] for row in walk.ids(memberships(), after_id)]
    rows = Member.objects.filter(club_id=group.club_id).values(*MEMBER_COLUMNS)
    by_id = {row["id"]: row for row in value_rows(rows.filter(pk__in=page_ids[:per_page]))}
    members = [by_id[member_id] for member_id in page_ids[:per_page] if member_id in by_id]
    return walk.page(members, page_ids, memberships, after_id)


@dataclass(frozen=True)
class _Walk:
    """The shape of a page of a group's members by id: its direction, offset and size, and
    whether it is a key-set page (after an id)."""

    descending: bool
    offset: int
    per_page: int
    keyset: bool

    def ids(self, memberships: QuerySet[Any], after_id: int | None) -> QuerySet[Any]:
        """The page's ids, with one more to tell whether more follow."""
        after = "member_id__lt" if self.descending else "member_id__gt"
        ids = memberships.filter(**{after: after_id}) if self.keyset else memberships
        ids = ids.order_by("-member_id" if self.descending else "member_id").values("member_id")
        return ids[self.offset : self.offset + self.per_page + 1]

    def upto(self, after_id: int | None) -> dict[str, int | None]:
        """The walk's members up to ``after_id``: when there are any, the page is not the
        first."""
        return {"member_id__gte" if self.descending else "member_id__lte": after_id}

    def rows(self, club_id: int, memberships: QuerySet[Any], after_id: int | None) -> QuerySet[Any]:
        """The page as one statement (every membership has its member): the ids paged in a
        subquery (the deferred join) and their rows read beside them, with whether any
        member is before them (an uncorrelated subquery, evaluated once)."""
        page: QuerySet[Any] = (
            Member.objects.filter(club_id=club_id, pk__in=self.ids(memberships, after_id))
            .values(*MEMBER_COLUMNS)
            .order_by("-pk" if self.descending else "pk")
        )
        if self.keyset:
            page = page.annotate(before=Exists(memberships.filter(**self.upto(after_id))))
        return page

    def page(
        self,
        members: list[dict[str, Any]],
        page_ids: list[int],
        memberships: Callable[[], QuerySet[Any]],
        after_id: int | None,
    ) -> MembersPage:
        """The page of ``members``, whose ids the walk found ``page_ids``."""
        if not self.keyset:
            is_first = self.offset == 0
        elif members and "before" in members[0]:
            is_first = not members[0]["before"]
        else:
            is_first = not memberships().filter(**self.upto(after_id)).exists()
        more = len(page_ids) > self.per_page
        return MembersPage(
            members=members[: self.per_page],
            next_after_id=page_ids[self.per_page - 1] if more else None,
            is_first=is_first,
        )


@lru_cache(maxsize=256)
def _compiled_page(walk: _Walk) -> CompiledRows:
    """The statement of a group's page of this shape, now and unfiltered, compiled once.

    Django writes a page's LIMIT and OFFSET into its SQL text, so each shape has its own;
    the ORM built and compiled it on every request: 0.6-0.9 ms of a page's CPU.
    """

    def build(club_id: int, group_id: int, after_id: int | None = None) -> QuerySet[Any]:
        memberships = Membership.objects.filter(club_id=club_id, group_id=group_id)
        return walk.rows(club_id, memberships, after_id)

    return CompiledRows(Member, 3 if walk.keyset else 2, build)


def members_with_join_times(
    group: MembersGroup, *, after: int, per_page: int
) -> tuple[list[tuple[Member, datetime]], int | None]:
    """One page of the group's members after id ``after``, with their join times, and the
    cursor of the next page.

    Pages over the membership index (club, group, member) with a LIMIT, then fetches
    just those members: as fast at any depth, where OFFSET or a COUNT would walk the group.
    """
    rows = list(
        Membership.objects.filter(club_id=group.club_id, group_id=group.pk, member_id__gt=after)
        .order_by("member_id")
        .values_list("member_id", "joined_at")[: per_page + 1]
    )
    joined = dict(rows[:per_page])
    members = Member.objects.filter(club_id=group.club_id, pk__in=list(joined)).order_by("pk")
    next_after = rows[per_page - 1][0] if len(rows) > per_page else None
    return [(member, joined[member.pk]) for member in members], next_after


def find_members(group: MembersGroup, term: str) -> list[tuple[Member, bool]]:
    """The club's members whose email, msisdn or id is ``term``, and whether each is in."""
    found = list(Member.objects.filter(identified_by(term), club_id=group.club_id).order_by("pk"))
    inside = set(
        Membership.objects.filter(
            club_id=group.club_id, group_id=group.pk, member_id__in=[m.pk for m in found]
        ).values_list("member_id", flat=True)
    )
    return [(member, member.pk in inside) for member in found]


def in_group(*, group_id: int, clubs: QuerySet[Club]) -> Exists | None:
    """True for members of group ``group_id``; None when no group of ``clubs`` has that id.

    A semi-join on the membership index (club, group, member), no ids in Python. The club
    as a constant, not the member's: the planner then seeks the group's rows instead of
    walking every club's memberships.
    """
    club_id = (
        MembersGroup.objects.filter(pk=group_id, club__in=clubs)
        .values_list("club_id", flat=True)
        .first()
    )
    if club_id is None:
        return None
    return Exists(
        Membership.objects.filter(club_id=club_id, group_id=group_id, member_id=OuterRef("pk"))
    )


def stored_members_total(
    *, clubs: QuerySet[Club], club_id: int | None, group_id: int | None
) -> int:
    """The members of ``clubs`` (of ``club_id``, of group ``group_id``), from stored counts.

    A club's members are its "All members" group's; a group's are its ``members_count``.
    """
    groups = MembersGroup.objects.filter(club__in=clubs)
    if club_id is not None:
        groups = groups.filter(club_id=club_id)
    groups = (
        groups.filter(pk=group_id)
        if group_id is not None
        else groups.filter(system_key=ALL_MEMBERS_KEY)
    )
    total: int = sum(groups.values_list("members_count", flat=True))
    return total
