"""Reads over audiences: the preview of a set of conditions, and its impact on a group."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.db.models import Exists, OuterRef, Q, QuerySet

from audiences.conditions import compile_conditions
from audiences.models import Audience
from audiences.services import check_conditions
from groups.models import Membership
from loyalty.errors import InvalidParameters
from loyalty.models import Club
from members.models import Member

PREVIEW_MEMBER_IDS = 100


@dataclass(frozen=True)
class Impact:
    """Who would join and leave a group if its rule were replaced by the previewed one."""

    members_group_id: int
    joining: int
    leaving: int
    joining_sample: list[int]
    leaving_sample: list[int]


@dataclass(frozen=True)
class Preview:
    count: int
    member_ids: list[int]
    impact: Impact | None


def _first_ids(queryset: QuerySet[Any], field: str) -> list[int]:
    return list(queryset.order_by(field).values_list(field, flat=True)[:PREVIEW_MEMBER_IDS])


def _impact(club: Club, rule: Q, group_id: int) -> Impact:
    # The group through its audience's reverse relation: a group of the club that follows
    # an audience.
    if not Audience.objects.filter(club=club, groups__pk=group_id).exists():
        raise InvalidParameters.field("members_group_id", "not_found")
    current = Membership.objects.filter(club=club, group_id=group_id)
    joining = Member.objects.filter(rule).exclude(Exists(current.filter(member_id=OuterRef("pk"))))
    leaving = current.exclude(Exists(Member.objects.filter(rule, pk=OuterRef("member_id"))))
    return Impact(
        members_group_id=group_id,
        joining=joining.count(),
        leaving=leaving.count(),
        joining_sample=_first_ids(joining, "pk"),
        leaving_sample=_first_ids(leaving, "member_id"),
    )


def preview(
    *,
    club: Club,
    conditions: Any,
    members_group_id: int | None = None,
    audience_id: int | None = None,
) -> Preview:
    """How many of the club's members match, and the first ids; nothing is saved.

    With ``members_group_id``, also the impact of making these conditions that group's
    rule: how many would join and leave, with the first ids of each. The conditions are
    checked as saving them as that group's rule (or ``audience_id``'s) would check them.
    """
    node = check_conditions(
        club.pk, conditions, members_group_id=members_group_id, audience_id=audience_id
    )
    rule = compile_conditions(node, club_id=club.pk, tz=club.timezone)
    matching = Member.objects.filter(rule)
    return Preview(
        count=matching.count(),
        member_ids=_first_ids(matching, "pk"),
        impact=None if members_group_id is None else _impact(club, rule, members_group_id),
    )
