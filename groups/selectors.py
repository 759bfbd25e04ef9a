"""Reads over members groups: a member's groups, pages of a group's members, explanations."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any, cast
from zoneinfo import ZoneInfo

from django.db.models import (
    BooleanField,
    Case,
    Count,
    Exists,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    Sum,
    Value,
    When,
)
from django.db.models.functions import TruncDate, TruncWeek
from django.utils import timezone

from audiences.conditions import compile_conditions, parse_conditions
from groups.models import ALL_MEMBERS_KEY, EventKind, MembersGroup, Membership, MembershipEvent
from loyalty.models import Club
from loyalty.pagination import SortKey, sorted_by
from members.models import Member


def groups_of_member(member: Member) -> QuerySet[MembersGroup]:
    """The groups the member is in, found through the membership index ``(club, member)``,
    each with ``joined_at`` and ``joined_source`` (the door of the latest join)."""
    memberships = Membership.objects.filter(club_id=member.club_id, member_id=member.pk)
    joins = MembershipEvent.objects.filter(
        club_id=member.club_id,
        member_id=member.pk,
        group_id=OuterRef("pk"),
        kind=EventKind.JOINED,
    ).order_by("-created_at", "-id")
    return (
        MembersGroup.objects.filter(club_id=member.club_id, pk__in=memberships.values("group_id"))
        .select_related("audience")
        .annotate(
            joined_at=Subquery(memberships.filter(group_id=OuterRef("pk")).values("joined_at")),
            joined_source=Subquery(joins.values("source")[:1]),
        )
    )


@dataclass(frozen=True)
class MembersPage:
    members: list[Member]
    # The last id of this page when more follow (the next page's after_id), else None.
    next_after_id: int | None
    # Whether no member comes before this page.
    is_first: bool


def _member_ids_at(group: MembersGroup, at: datetime) -> QuerySet[Any]:
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
        else _member_ids_at(group, at)
    )
    return memberships.filter(member_id__in=only.values("pk")).count()


def group_members_count_at(*, group: MembersGroup, at: datetime) -> int:
    """The number of the group's members at ``at``: its joins up to then less its leaves.

    A member's events alternate, starting with a join (pruning keeps that: see
    ``ledger.prune_events``), so each member's events up to ``at`` add up to 1 (in) or 0
    (out), and their sum over the group is the count of ``_member_ids_at``. One plain
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
    if at is None:
        memberships: QuerySet[Any] = Membership.objects.filter(
            club_id=group.club_id, group_id=group.pk
        )
    else:
        memberships = _member_ids_at(group, at)
    if only is not None:
        memberships = memberships.filter(member_id__in=only.values("pk"))
    after = "member_id__lt" if descending else "member_id__gt"
    ids = memberships.filter(**{after: after_id}) if after_id else memberships
    page_ids = list(
        ids.order_by("-member_id" if descending else "member_id").values_list(
            "member_id", flat=True
        )[offset : offset + per_page + 1]
    )
    more = len(page_ids) > per_page
    page_ids = page_ids[:per_page]
    if not after_id:
        is_first = offset == 0
    else:
        before = "member_id__gte" if descending else "member_id__lte"
        is_first = not memberships.filter(**{before: after_id}).exists()
    by_id = Member.objects.filter(club_id=group.club_id).in_bulk(page_ids)
    return MembersPage(
        members=[by_id[member_id] for member_id in page_ids if member_id in by_id],
        next_after_id=page_ids[-1] if more else None,
        is_first=is_first,
    )


def sorted_group_members_page(
    *,
    group: MembersGroup,
    keys: Sequence[SortKey],
    per_page: int,
    offset: int,
    at: datetime | None = None,
    only: QuerySet[Member] | None = None,
) -> MembersPage:
    """One page of a group's members in the order of ``keys`` (member fields), then by id.

    Unlike the pages by id, which walk the membership index, the group's members are
    sorted here: a page costs the sort of the group, not of a page.
    """
    if at is None:
        member_ids: QuerySet[Any] = Membership.objects.filter(
            club_id=group.club_id, group_id=group.pk
        ).values("member_id")
    else:
        member_ids = _member_ids_at(group, at).values("member_id")
    members = (only if only is not None else Member.objects.filter(club_id=group.club_id)).filter(
        pk__in=member_ids
    )
    page = list(sorted_by(members, keys)[offset : offset + per_page])
    return MembersPage(members=page, next_after_id=None, is_first=offset == 0)


def explain_membership(*, group: MembersGroup, member: Member) -> dict[str, Any]:
    """Why a member is or is not in a group: every condition node, each with ``matches``.

    The conditions come back as stored, each node with a ``matches`` flag evaluated for
    this member in SQL (one query for the whole tree), beside ``is_member`` (the rows) and
    ``matches`` (the whole rule), which differ only while a recomputation is pending.
    """
    conditions = group.audience.conditions
    compiled: dict[str, Any] = {}

    def walk(items: list[Any], path: str) -> None:
        for index, item in enumerate(items):
            key = f"{path}_{index}"
            compiled[key] = _node_rule(group, [item])
            if isinstance(item, dict) and item.get("operator") in ("and", "or", "not"):
                walk(item["conditions"], key)

    walk(conditions, "n")
    compiled["rule"] = _node_rule(group, conditions)
    row = Member.objects.filter(pk=member.pk).values(
        **{
            key: Case(When(q, then=Value(True)), default=Value(False), output_field=BooleanField())
            for key, q in compiled.items()
        }
    )[0]
    # A boolean per key: keys passed as **kwargs are beyond what django-stubs can type.
    flags = cast("dict[str, bool]", row)

    def annotate(items: list[Any], path: str) -> list[dict[str, Any]]:
        annotated = []
        for index, item in enumerate(items):
            key = f"{path}_{index}"
            node = {**item, "matches": flags[key]}
            if item.get("operator") in ("and", "or", "not"):
                node["conditions"] = annotate(item["conditions"], key)
            annotated.append(node)
        return annotated

    return {
        "members_group_id": group.pk,
        "member_id": member.pk,
        "is_member": Membership.objects.filter(
            club_id=group.club_id, group_id=group.pk, member_id=member.pk
        ).exists(),
        "matches": flags["rule"],
        "conditions": annotate(conditions, "n"),
    }


def _node_rule(group: MembersGroup, conditions: list[Any]) -> Q:
    node = parse_conditions(conditions)
    return compile_conditions(node, club_id=group.club_id, tz=group.club.timezone)


def group_size_history(group: MembersGroup, *, days: int = 90) -> list[tuple[date, int]]:
    """The group's size at the end of each of the last ``days`` days (the club's days)."""
    today = timezone.now().astimezone(ZoneInfo(group.club.timezone)).date()
    stats = group_stats(group, since=today - timedelta(days=days - 1), until=today, interval="day")
    return [(interval.start, interval.size_at_end) for interval in stats]


@dataclass(frozen=True)
class IntervalStats:
    start: date
    end: date  # the last day of the interval
    size_at_start: int
    joins: int
    leaves: int
    size_at_end: int


def group_stats(
    group: MembersGroup, *, since: date, until: date, interval: str
) -> list[IntervalStats]:
    """The group's size and its joins and leaves per day or per week (Monday to Sunday) of
    the club's calendar, from the interval holding ``since`` to the one holding ``until``.

    One aggregate query over the event index counts each interval's joins and leaves since
    the first interval began; the size then is the stored count less the net joins since,
    and each interval's end size is its start size plus its joins less its leaves.
    """
    zone = ZoneInfo(group.club.timezone)
    step = timedelta(days=7 if interval == "week" else 1)
    first = since - timedelta(days=since.weekday()) if interval == "week" else since
    truncate = TruncWeek if interval == "week" else TruncDate
    rows = (
        MembershipEvent.objects.filter(
            club_id=group.club_id,
            group_id=group.pk,
            created_at__gte=datetime.combine(first, time.min, tzinfo=zone),
        )
        .annotate(bucket=truncate("created_at", tzinfo=zone))
        .values("bucket")
        .annotate(
            joins=Count("id", filter=Q(kind=EventKind.JOINED)),
            leaves=Count("id", filter=Q(kind=EventKind.LEFT)),
        )
        .order_by()
        .values_list("bucket", "joins", "leaves")
    )
    counts = {
        (bucket.date() if isinstance(bucket, datetime) else bucket): (joins, leaves)
        for bucket, joins, leaves in rows
    }
    size = group.members_count - sum(joins - leaves for joins, leaves in counts.values())
    stats = []
    start = first
    while start <= until:
        joins, leaves = counts.get(start, (0, 0))
        stats.append(
            IntervalStats(
                start, start + step - timedelta(days=1), size, joins, leaves, size + joins - leaves
            )
        )
        size += joins - leaves
        start += step
    return stats


# The members admin's groups (groups.admin.members) -------------------------------------


def group_choices(*, clubs: QuerySet[Club], club_id: int | None) -> list[tuple[int, str, str]]:
    """The groups of ``clubs`` (of ``club_id`` alone when given) as (id, name, club name),
    by club name, name and id."""
    groups = MembersGroup.objects.filter(club__in=clubs)
    if club_id is not None:
        groups = groups.filter(club_id=club_id)
    return list(groups.order_by("club__name", "name", "pk").values_list("pk", "name", "club__name"))


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


def groups_of_members(members: Sequence[Member]) -> dict[int, list[tuple[int, str]]]:
    """Each member's groups as (id, name), by name, in one query for them all.

    Both columns of the index (club, member), so only these members' rows are read.
    """
    rows = (
        Membership.objects.filter(
            club_id__in={member.club_id for member in members},
            member_id__in=[member.pk for member in members],
        )
        .order_by("group__name", "group_id")
        .values_list("member_id", "group_id", "group__name")
    )
    groups: dict[int, list[tuple[int, str]]] = {member.pk: [] for member in members}
    for member_id, group_id, name in rows:
        groups[member_id].append((group_id, name or f"group {group_id}"))
    return groups


def memberships_of_member(member: Member) -> list[tuple[int, str, datetime]]:
    """Every group of the member as (id, name, joined at), by name, in one query on
    (club, member)."""
    return list(
        Membership.objects.filter(club_id=member.club_id, member_id=member.pk)
        .order_by("group__name", "group_id")
        .values_list("group_id", "group__name", "joined_at")
    )


def groups_counts_of_members(members: Sequence[Member]) -> dict[int, int]:
    """How many groups each member is in (members in none are left out), in one query."""
    return dict(
        Membership.objects.filter(
            club_id__in={member.club_id for member in members},
            member_id__in=[member.pk for member in members],
        )
        .values("member_id")
        .annotate(groups=Count("*"))
        .values_list("member_id", "groups")
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
