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


# The preview runs the checks saving runs, each refusal at the conditions naming the groups.


def test_previewing_a_rule_naming_missing_or_foreign_groups_is_422_at_those_conditions(
    api: APIClient, club: Club, other_club: Club
) -> None:
    mine = GroupFactory(club=club)
    foreign = GroupFactory(club=other_club)
    rule = [
        in_groups(mine.pk),
        {
            "operator": "or",
            "conditions": [cond("string", "email", "present"), in_groups(mine.pk, 999_999)],
        },
        {"operator": "not", "conditions": [in_groups(foreign.pk)]},
    ]

    response = api.post("audiences/preview", {"conditions": rule})
    saved = api.post("audiences", {"name": "Bad", "conditions": rule})

    def unknown(*ids: int) -> dict[str, object]:
        return {"value": [{"error": "unknown_members_group", "options": {"ids": list(ids)}}]}

    assert response.status_code == 422
    assert response.json() == {
        "error": "Invalid parameters",
        "details": {
            "conditions": {
                "1": {"conditions": {"1": unknown(999_999)}},
                "2": {"conditions": {"0": unknown(foreign.pk)}},
            }
        },
    }
    # The same check as saving, which names the ids under the field.
    assert saved.json()["details"] == unknown_groups(foreign.pk, 999_999)


def test_previewing_a_rule_for_a_group_that_would_make_a_cycle_is_422_at_its_condition(
    api: APIClient, club: Club
) -> None:
    base = GroupFactory(club=club, name="Base")
    first = group_services.create_group(
        club=club, name="First", audience_conditions=[in_groups(base.pk)]
    )
    second = group_services.create_group(
        club=club, name="Second", audience_conditions=[in_groups(first.pk)]
    )
    rule = [cond("string", "email", "present"), in_groups(base.pk, second.pk)]

    preview = api.post("audiences/preview", {"conditions": rule, "members_group_id": first.pk})
    itself = api.post(
        "audiences/preview", {"conditions": [in_groups(first.pk)], "members_group_id": first.pk}
    )
    saved = api.patch(f"members_groups/{first.pk}", {"audience_conditions": rule})
    elsewhere = api.post("audiences/preview", {"conditions": rule, "members_group_id": base.pk})

    cycle = {
        "error": "cycle",
        "options": {
            "members_group_ids": [first.pk, second.pk, first.pk],
            "path": f"First ({first.pk}) -> Second ({second.pk}) -> First ({first.pk})",
        },
    }
    assert preview.status_code == 422
    assert preview.json() == {
        "error": "Invalid parameters",
        "details": {"conditions": {"1": {"value": [cycle]}}},
    }
    assert saved.json()["details"] == {"audience_conditions": [cycle]}
    assert itself.json()["details"] == {
        "conditions": {
            "0": {
                "value": [
                    {
                        "error": "cycle",
                        "options": {
                            "members_group_ids": [first.pk, first.pk],
                            "path": f"First ({first.pk}) -> First ({first.pk})",
                        },
                    }
                ]
            }
        }
    }
    # A manual group has no rule to make a cycle of: the impact is counted.
    assert elsewhere.status_code == 200
    assert elsewhere.json()["impact"]["members_group_id"] == base.pk
