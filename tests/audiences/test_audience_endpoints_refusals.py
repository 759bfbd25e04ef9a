"""The audience endpoints refuse rules the group endpoints refuse, keyed by ``conditions``."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from audiences.models import Audience
from audiences.services import create_audience
from groups import services as group_services
from loyalty.models import Club
from tests.factories import GroupFactory, MemberFactory
from tests.helpers import assert_consistent, cond, in_groups

pytestmark = pytest.mark.django_db


def unknown_groups(*ids: int) -> dict[str, list[dict[str, object]]]:
    return {"conditions": [{"error": "unknown_members_group", "options": {"ids": list(ids)}}]}


def test_creating_an_audience_naming_a_missing_or_foreign_group_is_422(
    api: APIClient, club: Club, other_club: Club
) -> None:
    mine = GroupFactory(club=club)
    foreign = GroupFactory(club=other_club)
    before = Audience.objects.count()

    response = api.post(
        "audiences",
        {"name": "Bad", "conditions": [in_groups(mine.pk, foreign.pk, 999_999)]},
    )

    assert response.status_code == 422
    assert response.json() == {
        "error": "Invalid parameters",
        "details": unknown_groups(foreign.pk, 999_999),
    }
    assert Audience.objects.count() == before


@pytest.mark.parametrize("method", ["put", "patch"])
def test_changing_a_followed_audience_to_name_a_missing_group_is_422_and_changes_nothing(
    api: APIClient, club: Club, method: str
) -> None:
    ann = MemberFactory(club=club, email="ann@gold.example")
    MemberFactory(club=club, email="bob@silver.example")
    gold = [cond("string", "email", "match", "@gold.")]
    audience = create_audience(club=club, name="Gold", conditions=gold)
    group = group_services.create_group(club=club, name="Gold", audience_id=audience.pk)

    response = getattr(api, method)(
        f"audiences/{audience.pk}", {"name": "Renamed", "conditions": [in_groups(999_999)]}
    )

    assert response.status_code == 422
    assert response.json() == {"error": "Invalid parameters", "details": unknown_groups(999_999)}
    audience.refresh_from_db()
    assert (audience.name, audience.conditions) == ("Gold", gold)
    assert list(group.memberships.values_list("member_id", flat=True)) == [ann.pk]
    assert_consistent(group)


def test_changing_an_audience_to_name_another_clubs_group_is_422(
    api: APIClient, club: Club, other_club: Club
) -> None:
    foreign = GroupFactory(club=other_club)
    audience = create_audience(club=club, name="Spare", conditions=[])

    response = api.patch(f"audiences/{audience.pk}", {"conditions": [in_groups(foreign.pk)]})

    assert response.status_code == 422
    assert response.json()["details"] == unknown_groups(foreign.pk)
    audience.refresh_from_db()
    assert audience.conditions == []


def test_an_audience_change_making_a_cycle_is_422_naming_it_under_conditions(
    api: APIClient, club: Club
) -> None:
    base = GroupFactory(club=club, name="Base")
    audience = create_audience(club=club, name="Rule", conditions=[in_groups(base.pk)])
    first = group_services.create_group(club=club, name="First", audience_id=audience.pk)
    second = group_services.create_group(
        club=club, name="Second", audience_conditions=[in_groups(first.pk)]
    )

    response = api.put(f"audiences/{audience.pk}", {"conditions": [in_groups(second.pk)]})

    assert response.status_code == 422
    assert response.json() == {
        "error": "Invalid parameters",
        "details": {
            "conditions": [
                {
                    "error": "cycle",
                    "options": {
                        "members_group_ids": [first.pk, second.pk, first.pk],
                        "path": f"First ({first.pk}) -> Second ({second.pk}) -> First ({first.pk})",
                    },
                }
            ]
        },
    }
    audience.refresh_from_db()
    assert audience.conditions == [in_groups(base.pk)]


def test_a_group_change_making_a_cycle_is_422_naming_it_under_the_field_sent(
    api: APIClient, club: Club
) -> None:
    base = GroupFactory(club=club, name="Base")
    first = group_services.create_group(
        club=club, name="First", audience_conditions=[in_groups(base.pk)]
    )
    second = group_services.create_group(
        club=club, name="Second", audience_conditions=[in_groups(first.pk)]
    )
    second_rule = create_audience(club=club, name="Uses second", conditions=[in_groups(second.pk)])

    by_rule = api.patch(
        f"members_groups/{first.pk}", {"audience_conditions": [in_groups(second.pk)]}
    )
    by_audience = api.patch(f"members_groups/{first.pk}", {"audience_id": second_rule.pk})

    cycle = {
        "error": "cycle",
        "options": {
            "members_group_ids": [first.pk, second.pk, first.pk],
            "path": f"First ({first.pk}) -> Second ({second.pk}) -> First ({first.pk})",
        },
    }
    assert by_rule.status_code == by_audience.status_code == 422
    assert by_rule.json() == {
        "error": "Invalid parameters",
        "details": {"audience_conditions": [cycle]},
    }
    assert by_audience.json() == {
        "error": "Invalid parameters",
        "details": {"audience_id": [cycle]},
    }
    first.refresh_from_db()
    assert first.audience.conditions == [in_groups(base.pk)]
