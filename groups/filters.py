"""Query-string filters of the members group lists and of a group's events."""

from __future__ import annotations

from groups.models import EventKind, Source
from loyalty.api.filters import (
    ChoiceFilter,
    FlagFilter,
    IdsFilter,
    IntegerFilter,
    MomentFilter,
    QueryFilter,
    QueryFilterSet,
    SearchFilter,
)


class MembersGroupFilterSet(QueryFilterSet):
    """The groups list's filters, and a member's groups'."""

    ids = IdsFilter("pk", help_text="Only these group ids.")
    name = QueryFilter(help_text='Name equal to this (case-sensitive; "" for no name).')
    type = QueryFilter(help_text='Type equal to this (case-sensitive; "" for no type).')
    automatic = FlagFilter(help_text="Only automatic (true) or manual (false) groups.")
    system = FlagFilter(help_text="Only system (true) or other (false) groups.")
    search = SearchFilter(
        "name",
        "description",
        help_text="Name or description contains this, whatever the case (every alphabet).",
    )


class MembershipEventFilterSet(QueryFilterSet):
    """A group's membership events: by member, kind, source and time."""

    member_id = IntegerFilter(help_text="Only this member's events.")
    kind = ChoiceFilter(choices=EventKind.values, help_text="Only joins or leaves.")
    source = ChoiceFilter(
        choices=Source.values, help_text="Only changes that came through this door."
    )
    since = MomentFilter(
        "created_at",
        lookup_expr="gte",
        help_text="At or after this time (ISO 8601; UTC without an offset).",
    )
    until = MomentFilter(
        "created_at",
        lookup_expr="lt",
        help_text="Before this time (ISO 8601; UTC without an offset).",
    )
