"""The audiences API: saved rules, the refusals that protect groups, and the preview."""

from __future__ import annotations

from typing import Any

import pytest
from rest_framework.test import APIClient

from audiences.models import Audience
from audiences.services import create_audience
from groups import services as group_services
from groups.models import MembersGroup
from loyalty.models import Club
from members import services as member_services
from members.models import Member
from tests.factories import GroupFactory, MemberFactory
from tests.helpers import cond, in_groups

pytestmark = pytest.mark.django_db


def test_listing_audiences_includes_the_groups_own_ones(
    api: APIClient, club: Club, all_members: MembersGroup
) -> None:
    red = GroupFactory(club=club, name="Red")
    golfers = create_audience(club=club, name="Golfers", conditions=[])

    response = api.get("audiences?sort_by[]=name&sort_directions[]=desc")

    assert response.status_code == 200
    assert [a["id"] for a in response.json()["audiences"]] == [
        red.audience_id,
        golfers.pk,
        all_members.audience_id,
    ]
    assert response.json()["audiences"][0] == {
        "id": red.audience_id,
        "name": "Red",
        "conditions": [in_groups(red.pk)],
        "created_at": red.audience.created_at.isoformat().replace("+00:00", "Z"),
        "updated_at": red.audience.updated_at.isoformat().replace("+00:00", "Z"),
    }
    assert response.json()["pagination_info"]["total_count"] == 3


def test_creating_an_audience_returns_201_and_ignores_read_only_fields(
    api: APIClient, club: Club, other_club: Club
) -> None:
    conditions = [cond("string", "email", "match", "@gold.")]

    response = api.post(
        "audiences",
        {"name": "Gold", "conditions": conditions, "id": 5555, "club": other_club.pk},
    )

    assert response.status_code == 201
    assert set(response.json()) == {"id", "name", "conditions", "created_at", "updated_at"}
    assert response.json()["conditions"] == conditions
    audience = Audience.objects.get(pk=response.json()["id"])
    assert (audience.club_id, audience.name, audience.conditions) == (club.pk, "Gold", conditions)
    assert audience.pk != 5555


def test_bad_conditions_are_422_with_details_by_index(api: APIClient) -> None:
    response = api.post(
        "audiences",
        {"name": "Bad", "conditions": [cond("string", "email", "eq", "a"), "oops"]},
    )

    assert response.status_code == 422
    assert response.json()["error"] == "Invalid parameters"
    assert set(response.json()["details"]["conditions"]) == {"1"}
    assert not Audience.objects.filter(name="Bad").exists()


def test_showing_and_renaming_an_audience(api: APIClient, club: Club, other_club: Club) -> None:
    audience = create_audience(club=club, name="Old", conditions=[])

    shown = api.get(f"audiences/{audience.pk}")
    renamed = api.patch(
        f"audiences/{audience.pk}", {"name": "New", "id": audience.pk + 1, "club": other_club.pk}
    )

    assert shown.status_code == renamed.status_code == 200
    assert shown.json()["name"] == "Old"
    assert renamed.json()["name"] == "New"
    audience.refresh_from_db()
    assert (audience.name, audience.club_id, audience.conditions) == ("New", club.pk, [])


def test_changing_a_followed_audience_recomputes_its_groups(api: APIClient, club: Club) -> None:
    MemberFactory(club=club, email="ann@gold.example")
    bob = MemberFactory(club=club, email="bob@silver.example")
    audience = create_audience(
        club=club, name="Gold", conditions=[cond("string", "email", "match", "@gold.")]
    )
    group = group_services.create_group(club=club, name="Gold", audience_id=audience.pk)

    response = api.put(
        f"audiences/{audience.pk}",
        {"name": "Silver", "conditions": [cond("string", "email", "match", "@silver.")]},
    )

    assert response.status_code == 200
    group.refresh_from_db()
    assert group.members_count == 1
    assert list(group.memberships.values_list("member_id", flat=True)) == [bob.pk]


def test_the_rule_of_a_manual_groups_audience_cannot_change(api: APIClient, club: Club) -> None:
    group = GroupFactory(club=club, name="Red")

    response = api.patch(f"audiences/{group.audience_id}", {"conditions": []})

    assert response.status_code == 405
    assert response.json() == {
        "error": "The audience is the rule of a manual or system group and cannot be changed."
    }
    group.audience.refresh_from_db()
    assert group.audience.conditions == [in_groups(group.pk)]


def test_a_system_groups_audience_cannot_be_renamed(api: APIClient, all_members: Any) -> None:
    audience_id = all_members.audience_id

    response = api.patch(f"audiences/{audience_id}", {"name": "Everyone"})
    unchanged = api.patch(f"audiences/{audience_id}", {"name": "All members"})

    assert response.status_code == 405
    assert response.json() == {
        "error": "The audience of a system group is the system's and cannot be changed."
    }
    assert unchanged.status_code == 200
    assert Audience.objects.get(pk=audience_id).name == "All members"


def test_destroying_an_unused_audience_returns_204(api: APIClient, club: Club) -> None:
    audience = create_audience(club=club, name="Spare", conditions=[])

    response = api.delete(f"audiences/{audience.pk}")

    assert response.status_code == 204
    assert response.content == b""
    assert not Audience.objects.filter(pk=audience.pk).exists()


def test_destroying_an_audience_used_by_a_group_is_405(api: APIClient, club: Club) -> None:
    group = GroupFactory(club=club)

    response = api.delete(f"audiences/{group.audience_id}")

    assert response.status_code == 405
    assert response.json() == {
        "error": "The audience is used by a members group and cannot be destroyed."
    }
    assert Audience.objects.filter(pk=group.audience_id).exists()


def test_previewing_counts_the_matches_and_lists_the_first_100_ids(
    api: APIClient, club: Club
) -> None:
    ids = member_services.bulk_create_members(
        club=club,
        members=[Member(email=f"m{i}@example.com") for i in range(105)],
        source="import",
    )
    group = GroupFactory(club=club)
    group_services.add_member_ids(group=group, member_ids=ids[3:], source="api")
    audiences_before = Audience.objects.count()

    response = api.post("audiences/preview", {"conditions": [in_groups(group.pk)]})

    assert response.status_code == 200
    assert response.json() == {"count": 102, "member_ids": sorted(ids[3:])[:100], "impact": None}
    assert Audience.objects.count() == audiences_before


def test_previewing_any_condition_of_the_grammar(api: APIClient, club: Club) -> None:
    ann = MemberFactory(club=club, email="ann@gold.example", properties={"first_name": "Ann"})
    MemberFactory(club=club, email="bob@gold.example", properties={"first_name": "Bob"})

    response = api.post(
        "audiences/preview",
        {
            "conditions": [
                cond("string", "email", "match", "@gold."),
                {"operator": "not", "conditions": [cond("string", "first_name", "eq", "Bob")]},
            ]
        },
    )

    assert response.json() == {"count": 1, "member_ids": [ann.pk], "impact": None}


def test_previewing_bad_conditions_is_422(api: APIClient) -> None:
    missing = api.post("audiences/preview", {})
    bad = api.post(
        "audiences/preview", {"conditions": [in_groups(1), cond("string", "email", "shout", "x")]}
    )

    assert missing.status_code == bad.status_code == 422
    assert missing.json()["details"] == {"conditions": [{"error": "required", "options": {}}]}
    assert set(bad.json()["details"]["conditions"]) == {"1"}


def test_previewing_against_a_group_reports_who_would_join_and_leave(
    api: APIClient, club: Club
) -> None:
    ann, bob, cid = (
        MemberFactory(club=club, email=f"{name}@example.com", properties={"points": points})
        for name, points in (("ann", 1), ("bob", 5), ("cid", 9))
    )
    group = GroupFactory(club=club)
    group_services.add_member_ids(group=group, member_ids=[ann.pk, bob.pk], source="api")
    rows_before = list(group.memberships.values_list("member_id", flat=True))

    response = api.post(
        "audiences/preview",
        {"conditions": [cond("number", "points", "gte", 5)], "members_group_id": group.pk},
    )

    assert response.status_code == 200
    assert response.json() == {
        "count": 2,
        "member_ids": [bob.pk, cid.pk],
        "impact": {
            "members_group_id": group.pk,
            "joining": 1,
            "leaving": 1,
            "joining_sample": [cid.pk],
            "leaving_sample": [ann.pk],
        },
    }
    assert list(group.memberships.values_list("member_id", flat=True)) == rows_before


def test_previewing_against_another_clubs_group_is_422(
    api: APIClient, club: Club, other_club: Club
) -> None:
    foreign = GroupFactory(club=other_club)
    response = api.post("audiences/preview", {"conditions": [], "members_group_id": foreign.pk})
    assert response.status_code == 422
    assert response.json()["details"] == {
        "members_group_id": [{"error": "not_found", "options": {}}]
    }


def test_a_branch_with_an_unknown_operator_is_refused_at_its_operator(
    api: APIClient, club: Club
) -> None:
    leaf = {"type": "number", "field": "id", "operator": "gte", "value": 1}
    conditions = [leaf, {"operator": "xor", "conditions": [leaf, leaf]}]

    response = api.post("audiences/preview", {"conditions": conditions})

    assert response.status_code == 422
    assert response.json()["details"] == {
        "conditions": {
            "1": {
                "operator": [{"error": "inclusion", "options": {"allowed": ["and", "or", "not"]}}]
            }
        }
    }
