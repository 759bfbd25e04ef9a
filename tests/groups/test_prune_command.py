"""prune_membership_events drops old history and keeps the recent past exact."""

from __future__ import annotations

import io
from datetime import timedelta
from typing import Any

import pytest
from django.core.management import call_command
from django.utils import timezone

from groups import services
from groups.models import MembersGroup, MembershipEvent
from loyalty.models import Club
from tests.api_fixtures import ClubClient
from tests.factories import MemberFactory
from tests.helpers import assert_consistent

pytestmark = pytest.mark.django_db


def days_ago(days: float) -> Any:
    return timezone.now() - timedelta(days=days)


@pytest.fixture
def old_history(club: Club) -> tuple[MembersGroup, list[int]]:
    """Ten members; their joins and leaves spread over the last 60 days, oldest first."""
    members = [MemberFactory(club=club, email=f"h{n}@example.com").pk for n in range(10)]
    group = services.create_group(club=club, name="Old")
    steps = [
        (services.add_member_ids, members[:6], 60),
        (services.remove_member_ids, members[:3], 50),
        (services.add_member_ids, [members[0], *members[6:9]], 40),
        (services.remove_member_ids, [members[6]], 20),
        (services.add_member_ids, [members[9]], 10),
    ]
    for change, ids, age in steps:
        latest = MembershipEvent.objects.filter(group_id=group.pk).order_by("-id").first()
        change(group=group, member_ids=ids, source="api")
        new = MembershipEvent.objects.filter(group_id=group.pk)
        if latest is not None:
            new = new.filter(id__gt=latest.id)
        new.update(created_at=days_ago(age))
    return group, members


def snapshot(api: ClubClient, group: MembersGroup, at: Any) -> list[int]:
    body = api.get(f"members_groups/{group.pk}/members", {"at": at.isoformat(), "per_page": 50})
    return [member["id"] for member in body.json()["members"]]


def test_pruning_keeps_the_members_at_every_moment_after_the_cut(
    api: ClubClient, old_history: tuple[MembersGroup, list[int]]
) -> None:
    group, _members = old_history
    moments = [days_ago(age) for age in (45, 35, 30, 15, 5, 0)]
    before = [snapshot(api, group, at) for at in moments]
    stats_path = f"members_groups/{group.pk}/stats"
    stats_since = {"since": days_ago(45).date().isoformat()}
    stats_before = api.get(stats_path, stats_since).json()["stats"]
    events_before = MembershipEvent.objects.filter(group_id=group.pk).count()
    output = io.StringIO()

    call_command("prune_membership_events", "--older-than-days", "45", stdout=output)

    assert [snapshot(api, group, at) for at in moments] == before
    assert api.get(stats_path, stats_since).json()["stats"] == stats_before
    old = MembershipEvent.objects.filter(group_id=group.pk, created_at__lt=days_ago(45))
    # Six joined 60 days ago and three left 50 days ago: the other three joins are kept.
    assert old.count() == 3
    assert set(old.values_list("kind", flat=True)) == {"joined"}
    deleted = events_before - MembershipEvent.objects.filter(group_id=group.pk).count()
    assert deleted == 6
    assert f"Deleted {deleted} membership events" in output.getvalue()
    assert_consistent(group)


def test_retention_forever_prunes_nothing(
    old_history: tuple[MembersGroup, list[int]], settings: Any
) -> None:
    settings.MEMBERSHIP_EVENTS_RETENTION_DAYS = 0
    group, _ = old_history
    count = MembershipEvent.objects.filter(group_id=group.pk).count()
    output = io.StringIO()

    call_command("prune_membership_events", stdout=output)

    assert MembershipEvent.objects.filter(group_id=group.pk).count() == count
    assert "nothing to prune" in output.getvalue()
