"""The groups app's receivers: each domain signal is connected exactly once, and acts."""

from __future__ import annotations

import pytest
from django.dispatch import Signal

from audiences.signals import audience_conditions_changed
from groups import services
from loyalty.models import Club
from loyalty.signals import club_created
from members.models import Member
from members.signals import member_deleting, member_saved, members_created, members_updated
from tests.helpers import cond

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    ("signal", "dispatch_uid"),
    [
        (club_created, "groups.create_system_groups"),
        (member_saved, "groups.refresh_memberships_for_member"),
        (members_created, "groups.place_new_members"),
        (members_updated, "groups.refresh_memberships_for_updated_members"),
        (member_deleting, "groups.leave_all_groups"),
        (audience_conditions_changed, "groups.recompute_audience_followers"),
    ],
)
def test_each_receiver_is_connected_once(signal: Signal, dispatch_uid: str) -> None:
    keys = [lookup_key for lookup_key, *_ in signal.receivers]
    assert [key[0] for key in keys].count(dispatch_uid) == 1
    assert len(keys) == 1


def test_a_batch_of_updated_members_moves_between_automatic_groups(club: Club) -> None:
    group = services.create_group(
        club=club, name="High", audience_conditions=[cond("number", "points", "gte", 5)]
    )
    ids = [
        Member.objects.create(club=club, email=f"m{i}@example.com", properties={"points": i}).pk
        for i in (1, 9)
    ]
    Member.objects.filter(pk__in=ids).update(properties={"points": 7})

    members_updated.send(sender=Member, club=club, member_ids=ids, source="import", actor="")

    group.refresh_from_db()
    assert group.members_count == 2
