"""An audience change recomputes its following groups in the background when the club is large."""

from __future__ import annotations

from typing import Any

import pytest
from rest_framework.test import APIClient

from audiences.services import create_audience
from groups import services
from groups.models import MembersGroup
from loyalty.models import Club
from tests.factories import MemberFactory
from tests.helpers import assert_consistent, cond, in_groups

pytestmark = pytest.mark.django_db


def member_ids(group: MembersGroup) -> set[int]:
    return set(group.memberships.values_list("member_id", flat=True))


def test_a_large_audience_change_flags_its_followers_and_a_task_recomputes_them_and_dependants(
    api: APIClient, club: Club, settings: Any, django_capture_on_commit_callbacks: Any
) -> None:
    ann = MemberFactory(club=club, email="ann@gold.example")
    bob = MemberFactory(club=club, email="bob@silver.example")
    audience = create_audience(
        club=club, name="Gold", conditions=[cond("string", "email", "match", "@gold.")]
    )
    follower = services.create_group(club=club, name="Follower", audience_id=audience.pk)
    dependant = services.create_group(
        club=club, name="Dependant", audience_conditions=[in_groups(follower.pk)]
    )
    settings.RECOMPUTE_INLINE_MAX = 0

    with django_capture_on_commit_callbacks() as callbacks:
        response = api.put(
            f"audiences/{audience.pk}",
            {"name": "Silver", "conditions": [cond("string", "email", "match", "@silver.")]},
        )

    assert response.status_code == 200
    shown = api.get(f"members_groups/{follower.pk}").json()
    assert (shown["recomputing"], shown["members_count"]) == (True, 1)
    assert member_ids(follower) == member_ids(dependant) == {ann.pk}
    assert len(callbacks) == 1

    callbacks[0]()

    shown = api.get(f"members_groups/{follower.pk}").json()
    assert (shown["recomputing"], shown["members_count"]) == (False, 1)
    assert member_ids(follower) == member_ids(dependant) == {bob.pk}
    assert_consistent(follower)
    assert_consistent(dependant)
