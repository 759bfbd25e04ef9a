"""Reads over audiences: the preview of a set of conditions against a club's members."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from audiences.conditions import compile_conditions
from audiences.services import parse_or_refuse
from loyalty.models import Club
from members.models import Member

PREVIEW_MEMBER_IDS = 100


@dataclass(frozen=True)
class Preview:
    count: int
    member_ids: list[int]


def preview(*, club: Club, conditions: Any) -> Preview:
    """How many of the club's members match, and the first ids; nothing is saved."""
    node = parse_or_refuse(conditions)
    matching = Member.objects.filter(compile_conditions(node, club_id=club.pk, tz=club.timezone))
    return Preview(
        count=matching.count(),
        member_ids=list(matching.order_by("pk").values_list("pk", flat=True)[:PREVIEW_MEMBER_IDS]),
    )
