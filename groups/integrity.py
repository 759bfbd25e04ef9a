"""Reads that check stored memberships and counts against the truth (used by --check)."""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import Exists, OuterRef

from audiences.conditions import compile_conditions, parse_conditions
from groups.models import MembersGroup, Membership
from members.models import Member


@dataclass(frozen=True)
class Discrepancy:
    """How a group's stored state differs from the truth; all zero when it is right."""

    group: MembersGroup
    stored_count: int
    rows: int
    missing: int
    stale: int

    @property
    def ok(self) -> bool:
        return self.stored_count == self.rows and self.missing == 0 and self.stale == 0

    def describe(self) -> str:
        problems = []
        if self.stored_count != self.rows:
            problems.append(f"members_count {self.stored_count} but {self.rows} rows")
        if self.missing:
            problems.append(f"{self.missing} matching members missing")
        if self.stale:
            problems.append(f"{self.stale} members that no longer match")
        return "; ".join(problems) or "ok"


def discrepancy(group: MembersGroup) -> Discrepancy:
    """Count rows, and for an automatic group the members its rule adds or drops (SQL only)."""
    rows = Membership.objects.filter(club_id=group.club_id, group_id=group.pk)
    missing = stale = 0
    if group.automatic:
        rule = compile_conditions(
            parse_conditions(group.audience.conditions),
            club_id=group.club_id,
            tz=group.club.timezone,
        )
        missing = (
            Member.objects.filter(rule)
            .exclude(Exists(rows.filter(member_id=OuterRef("pk"))))
            .count()
        )
        stale = rows.exclude(Exists(Member.objects.filter(rule, pk=OuterRef("member_id")))).count()
    return Discrepancy(
        group=group,
        stored_count=group.members_count,
        rows=rows.count(),
        missing=missing,
        stale=stale,
    )
