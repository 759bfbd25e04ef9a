"""Which groups a member is in, and the groups staff choose from."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from django.db.models import Count, OuterRef, QuerySet, Subquery

from groups.models import EventKind, MembersGroup, Membership, MembershipEvent
from loyalty.models import Club
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


def group_choices(*, clubs: QuerySet[Club], club_id: int | None) -> list[tuple[int, str, str]]:
    """The groups of ``clubs`` (of ``club_id`` alone when given) as (id, name, club name),
    by club name, name and id."""
    groups = MembersGroup.objects.filter(club__in=clubs)
    if club_id is not None:
        groups = groups.filter(club_id=club_id)
    return list(groups.order_by("club__name", "name", "pk").values_list("pk", "name", "club__name"))
