"""Assertions and payload builders shared by the tests."""

from __future__ import annotations

from typing import Any

from groups.models import EventKind, MembersGroup, Membership, MembershipEvent
from loyalty.models import Club


def assert_consistent(group: MembersGroup) -> None:
    """The stored count equals the rows, and the events replay to the rows."""
    group.refresh_from_db()
    rows = set(Membership.objects.filter(group=group).values_list("member_id", flat=True))
    assert group.members_count == len(rows)
    replayed: set[int] = set()
    for kind, member_id in (
        MembershipEvent.objects.filter(group_id=group.pk)
        .order_by("created_at", "id")
        .values_list("kind", "member_id")
    ):
        if kind == EventKind.JOINED:
            assert member_id not in replayed
            replayed.add(member_id)
        else:
            replayed.remove(member_id)
    assert replayed == rows


def cond(type_: str, field: str, operator: str, value: Any = None) -> dict[str, Any]:
    return {
        "condition_group": "member_properties",
        "type": type_,
        "field": field,
        "operator": operator,
        "value": value,
    }


def in_groups(*ids: int) -> dict[str, Any]:
    return cond("array", "members_group_ids", "any", list(ids))


def member_form(club: Club, **fields: Any) -> dict[str, Any]:
    """A complete member form, as the admin's add and change pages post it."""
    return {
        "club": club.pk,
        "email": "",
        "msisdn": "",
        "sms_status": "disabled",
        "email_status": "enabled",
        "push_status": "disabled",
        "properties": '{"first_name": "Ann"}',
        "consents": "{}",
        "subunit_ids": "[]",
        "favorite_stores": "[3, 5]",
        **fields,
    }
