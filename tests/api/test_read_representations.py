"""The read paths write their JSON from rows: byte for byte what DRF's generic walk of the
declared serializers writes for the same objects."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from rest_framework import serializers

from groups import services
from groups.models import MembersGroup
from groups.selectors import groups_of_member
from groups.serializers import GroupMembershipSerializer, MembersGroupSerializer
from loyalty.api.renderers import json_bytes
from loyalty.models import Club
from members.models import Member
from members.serializers import MemberSerializer
from tests.api_fixtures import ClubClient
from tests.factories import GroupFactory, MemberFactory
from tests.helpers import cond

pytestmark = pytest.mark.django_db


def walked(serializer: serializers.ModelSerializer[Any], instance: Any) -> dict[str, Any]:
    """DRF's field-by-field representation, not the serializer's written-out one."""
    return dict(serializers.ModelSerializer.to_representation(serializer, instance))


def as_sent(data: Any) -> bytes:
    return json_bytes(data)


def test_a_group_and_the_groups_list_are_the_serializers_walk(api: ClubClient, club: Club) -> None:
    group = services.create_group(
        club=club,
        name="Gold ✓",
        description="",
        audience_conditions=[cond("number", "points", "gte", 1.5)],
    )
    # Microseconds of zero and not: ISO 8601 either way, "Z" for UTC.
    MembersGroup.objects.filter(pk=group.pk).update(
        created_at=datetime(2025, 3, 1, 9, 30, tzinfo=UTC),
        updated_at=datetime(2025, 3, 1, 9, 30, 0, 120, tzinfo=UTC),
    )
    groups = list(MembersGroup.objects.filter(club=club).select_related("audience"))
    expected = [walked(MembersGroupSerializer(), g) for g in groups]

    shown = api.get(f"members_groups/{group.pk}")
    listed = api.get("members_groups")

    assert shown.content == as_sent(next(e for e in expected if e["id"] == group.pk))
    assert listed.content.startswith(as_sent({"members_groups": expected})[:-1])


def test_members_pages_and_a_member_are_the_serializers_walk(api: ClubClient, club: Club) -> None:
    group = GroupFactory(club=club)
    ann = MemberFactory(
        club=club,
        email="ann@example.com",
        msisdn=None,
        properties={"name": "Åse", "points": 2.0, "tags": ["a"]},
        subunit_ids=[3, 1],
    )
    bob = MemberFactory(club=club, email=None, msisdn="4740769126", consents={})
    services.add_member_ids(group=group, member_ids=[ann.pk, bob.pk], source="api")
    members = [Member.objects.get(pk=ann.pk), Member.objects.get(pk=bob.pk)]
    expected = [walked(MemberSerializer(), m) for m in members]

    page = api.get(f"members_groups/{group.pk}/members")
    listed = api.get("members")
    shown = api.get(f"members/{bob.pk}")

    assert page.content.startswith(as_sent({"members": expected})[:-1])
    assert listed.content.startswith(as_sent({"members": expected})[:-1])
    assert shown.content == as_sent(expected[1])


def test_a_members_groups_are_the_serializers_walk(api: ClubClient, club: Club) -> None:
    group = GroupFactory(club=club, name="Red")
    member = MemberFactory(club=club)
    services.add_member_ids(group=group, member_ids=[member.pk], source="api")
    expected = [walked(GroupMembershipSerializer(), g) for g in groups_of_member(member)]

    listed = api.get(f"members/{member.pk}/members_groups")

    assert [g["name"] for g in expected] == ["All members", "Red"]
    assert listed.content.startswith(as_sent({"members_groups": expected})[:-1])
