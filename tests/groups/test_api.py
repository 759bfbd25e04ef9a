"""The members groups API: groups, their members in bulk, and the exact wire shapes of SPEC §2."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from audiences.models import Audience
from groups import services
from groups.models import EventKind, MembersGroup, Membership, MembershipEvent
from loyalty.models import Club
from members.models import Member
from tests.factories import GroupFactory, MemberFactory
from tests.helpers import assert_consistent, cond

pytestmark = pytest.mark.django_db

GROUP_KEYS = {
    "id",
    "name",
    "type",
    "description",
    "automatic",
    "system",
    "audience_id",
    "audience_conditions",
    "members_count",
    "recomputing",
    "created_at",
    "updated_at",
}
PAGINATION_KEYS = {
    "total_count",
    "per_page",
    "total_pages",
    "current_page",
    "next_page",
    "prev_page",
    "is_first_page",
    "is_last_page",
    "is_out_of_range",
}


def stored(group: MembersGroup) -> dict[str, Any]:
    """The columns a client must never be able to set."""
    group.refresh_from_db()
    return {
        "club_id": group.club_id,
        "automatic": group.automatic,
        "system": group.system,
        "members_count": group.members_count,
        "audience_id": group.audience_id,
    }


def member_ids(group: MembersGroup) -> list[int]:
    return sorted(Membership.objects.filter(group=group).values_list("member_id", flat=True))


def own_rule(group_id: int) -> list[dict[str, Any]]:
    return [cond("array", "members_group_ids", "any", [group_id])]


# Reading -------------------------------------------------------------------------------------


def test_listing_groups_shows_every_group_of_the_club_with_pagination_info(
    api: APIClient, club: Club, all_members: MembersGroup
) -> None:
    red = GroupFactory(club=club, name="Red", type="Color", description="Warm")

    response = api.get("members_groups")

    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"members_groups", "pagination_info"}
    assert [g["id"] for g in body["members_groups"]] == [all_members.pk, red.pk]
    assert body["members_groups"][1] == {
        "id": red.pk,
        "name": "Red",
        "type": "Color",
        "description": "Warm",
        "automatic": False,
        "system": False,
        "audience_id": red.audience_id,
        "audience_conditions": own_rule(red.pk),
        "members_count": 0,
        "recomputing": False,
        "created_at": red.created_at.isoformat().replace("+00:00", "Z"),
        "updated_at": red.updated_at.isoformat().replace("+00:00", "Z"),
    }
    assert body["members_groups"][0]["system"] is True
    assert body["pagination_info"] == {
        "total_count": 2,
        "per_page": 100,
        "total_pages": 1,
        "current_page": 1,
        "next_page": None,
        "prev_page": None,
        "is_first_page": True,
        "is_last_page": True,
        "is_out_of_range": False,
    }


def test_group_list_pages_follow_page_no_and_per_page(api: APIClient, club: Club) -> None:
    groups = [GroupFactory(club=club, name=f"G{i}") for i in range(4)]  # plus All members

    second = api.get("members_groups", {"page_no": 2, "per_page": 2}).json()
    last = api.get("members_groups", {"page_no": 3, "per_page": 2}).json()
    beyond = api.get("members_groups", {"page_no": 4, "per_page": 2}).json()

    assert [g["id"] for g in second["members_groups"]] == [groups[1].pk, groups[2].pk]
    assert second["pagination_info"] == {
        "total_count": 5,
        "per_page": 2,
        "total_pages": 3,
        "current_page": 2,
        "next_page": 3,
        "prev_page": 1,
        "is_first_page": False,
        "is_last_page": False,
        "is_out_of_range": False,
    }
    assert [g["id"] for g in last["members_groups"]] == [groups[3].pk]
    assert last["pagination_info"]["is_last_page"] is True
    assert last["pagination_info"]["next_page"] is None
    assert beyond["members_groups"] == []
    assert beyond["pagination_info"]["is_out_of_range"] is True
    assert beyond["pagination_info"]["prev_page"] is None


@pytest.mark.parametrize(
    ("params", "details"),
    [
        ({"per_page": 1001}, {"per_page": [{"error": "max_value", "options": {"count": 1000}}]}),
        ({"per_page": 0}, {"per_page": [{"error": "min_value", "options": {"count": 1}}]}),
        ({"page_no": "two"}, {"page_no": [{"error": "invalid", "options": {"value": "two"}}]}),
        ({"page_no": -1}, {"page_no": [{"error": "min_value", "options": {"count": 1}}]}),
    ],
)
def test_bad_pagination_parameters_are_422(
    api: APIClient, params: dict[str, Any], details: dict[str, Any]
) -> None:
    response = api.get("members_groups", params)

    assert response.status_code == 422
    assert response.json() == {"error": "Invalid parameters", "details": details}


def test_groups_sort_by_several_fields_in_order(api: APIClient, club: Club) -> None:
    a = GroupFactory(club=club, name="A", type="Size")
    b = GroupFactory(club=club, name="B", type="Color")
    c = GroupFactory(club=club, name="C", type="Color")

    response = api.get(
        "members_groups?system=false&sort_by[]=type&sort_by[]=name"
        "&sort_directions[]=asc&sort_directions[]=desc"
    )

    assert [g["id"] for g in response.json()["members_groups"]] == [c.pk, b.pk, a.pk]


def test_sorting_by_an_unknown_field_is_422(api: APIClient) -> None:
    response = api.get("members_groups?sort_by[]=name&sort_by[]=secret&sort_directions[]=up")

    assert response.status_code == 422
    choices = ["id", "name", "type", "members_count", "created_at", "updated_at"]
    assert response.json()["details"] == {
        "sort_by": {"1": [{"error": "invalid_choice", "options": {"choices": choices}}]},
        "sort_directions": {
            "0": [{"error": "invalid_choice", "options": {"choices": ["asc", "desc"]}}]
        },
    }


def test_groups_filter_by_ids_name_type_flags_and_search(
    api: APIClient, club: Club, all_members: MembersGroup
) -> None:
    red = GroupFactory(club=club, name="Red", type="Color", description="Warm tones")
    blue = GroupFactory(club=club, name="Blue", type="Color", description="Cold")
    vip = GroupFactory(club=club, name="VIP", type="Tier", description="")

    def ids(query: str) -> list[int]:
        response = api.get(f"members_groups?{query}")
        assert response.status_code == 200, response.json()
        return [g["id"] for g in response.json()["members_groups"]]

    assert ids(f"ids[]={red.pk}&ids[]={vip.pk}") == [red.pk, vip.pk]
    assert ids("name=Blue") == [blue.pk]
    assert ids("type=Color") == [red.pk, blue.pk]
    assert ids("system=true") == [all_members.pk]
    assert ids("automatic=false") == [red.pk, blue.pk, vip.pk]
    assert ids("search=WARM") == [red.pk]
    assert ids("search=vi") == [vip.pk]
    assert ids("type=Color&search=cold") == [blue.pk]


def test_bad_filter_values_are_422(api: APIClient) -> None:
    flag = api.get("members_groups?automatic=maybe")
    ids = api.get("members_groups?ids[]=1&ids[]=x")

    assert flag.status_code == ids.status_code == 422
    assert flag.json()["details"] == {
        "automatic": [{"error": "invalid", "options": {"value": "maybe"}}]
    }
    assert ids.json()["details"] == {
        "ids": {"1": [{"error": "invalid", "options": {"value": "x"}}]}
    }


def test_showing_a_group(api: APIClient, club: Club) -> None:
    group = GroupFactory(club=club, name="Red")

    response = api.get(f"members_groups/{group.pk}")

    assert response.status_code == 200
    assert set(response.json()) == GROUP_KEYS
    assert response.json()["name"] == "Red"
    assert response.json()["audience_conditions"] == own_rule(group.pk)


def test_showing_an_unknown_group_is_404(api: APIClient) -> None:
    response = api.get("members_groups/999999")

    assert response.status_code == 404
    assert response.json() == {"error": "Not found"}


def test_list_parameters_do_not_apply_to_one_group(api: APIClient, club: Club) -> None:
    group = GroupFactory(club=club, name="Red")

    response = api.get(f"members_groups/{group.pk}?name=Blue&sort_by[]=nothing")

    assert response.status_code == 200
    assert response.json()["id"] == group.pk


# Creating --------------------------------------------------------------------------------------


def test_creating_a_manual_group_returns_201_and_its_own_audience(
    api: APIClient, club: Club
) -> None:
    response = api.post(
        "members_groups", {"name": "Red", "type": "Color", "description": "Lorem ipsum"}
    )

    assert response.status_code == 201
    group = MembersGroup.objects.get(pk=response.json()["id"])
    assert response.json() == {
        **response.json(),
        "name": "Red",
        "type": "Color",
        "description": "Lorem ipsum",
        "automatic": False,
        "system": False,
        "audience_id": group.audience_id,
        "audience_conditions": own_rule(group.pk),
        "members_count": 0,
    }
    assert set(response.json()) == GROUP_KEYS
    assert (group.club_id, group.name, group.type, group.automatic) == (
        club.pk,
        "Red",
        "Color",
        False,
    )
    assert group.audience.conditions == own_rule(group.pk)


def test_creating_an_automatic_group_from_conditions_computes_its_members(
    api: APIClient, club: Club
) -> None:
    ola = MemberFactory(club=club, email="ola@gold.example")
    MemberFactory(club=club, email="kari@silver.example")

    response = api.post(
        "members_groups",
        {"name": "Gold", "audience_conditions": [cond("string", "email", "match", "@gold.")]},
    )

    assert response.status_code == 201
    assert response.json()["automatic"] is True
    assert response.json()["members_count"] == 1
    assert response.json()["audience_conditions"] == [cond("string", "email", "match", "@gold.")]
    group = MembersGroup.objects.get(pk=response.json()["id"])
    assert member_ids(group) == [ola.pk]
    assert_consistent(group)


def test_creating_a_group_with_bad_conditions_is_422_and_creates_nothing(
    api: APIClient, club: Club
) -> None:
    before = MembersGroup.objects.count(), Audience.objects.count()

    response = api.post(
        "members_groups",
        {"name": "Bad", "audience_conditions": [cond("string", "email", "shout", "x")]},
    )

    assert response.status_code == 422
    assert response.json()["error"] == "Invalid parameters"
    assert set(response.json()["details"]["audience_conditions"]) == {"0"}
    assert (MembersGroup.objects.count(), Audience.objects.count()) == before


def test_sending_system_true_is_422_and_creates_nothing(api: APIClient, club: Club) -> None:
    before = MembersGroup.objects.count()

    response = api.post("members_groups", {"name": "Sneaky", "system": True})

    assert response.status_code == 422
    assert response.json() == {
        "error": "Invalid parameters",
        "details": {"system": [{"error": "not_allowed", "options": {}}]},
    }
    assert MembersGroup.objects.count() == before


def test_field_errors_name_the_field_code_and_limit(api: APIClient) -> None:
    response = api.post("members_groups", {"name": "x" * 201, "type": 7})

    assert response.status_code == 422
    assert response.json()["details"] == {
        "name": [{"error": "max_length", "options": {"count": 200}}],
        "type": [{"error": "invalid", "options": {}}],
    }


def test_null_text_fields_are_empty(api: APIClient, club: Club) -> None:
    created = api.post("members_groups", {"name": "Plain", "type": None, "description": None})

    assert created.status_code == 201
    assert (created.json()["type"], created.json()["description"]) == ("", "")
    group_id = created.json()["id"]
    api.patch(f"members_groups/{group_id}", {"type": "vip", "description": "Top"})

    cleared = api.patch(f"members_groups/{group_id}", {"type": None, "description": None})

    assert cleared.status_code == 200
    assert (cleared.json()["type"], cleared.json()["description"]) == ("", "")
    assert cleared.json()["name"] == "Plain"


def test_read_only_and_foreign_fields_of_a_new_group_never_take_effect(
    api: APIClient, club: Club, other_club: Club
) -> None:
    response = api.post(
        "members_groups",
        {
            "name": "Plain",
            "system": False,
            "automatic": True,
            "members_count": 42,
            "recomputing": True,
            "id": 424242,
            "club": other_club.pk,
            "club_id": other_club.pk,
            "system_key": "all_members",
        },
    )

    assert response.status_code == 201
    group = MembersGroup.objects.get(pk=response.json()["id"])
    assert group.pk != 424242
    assert stored(group) == {
        "club_id": club.pk,
        "automatic": False,
        "system": False,
        "members_count": 0,
        "audience_id": group.audience_id,
    }
    assert (group.system_key, group.recomputing) == (None, False)
    assert not MembersGroup.objects.filter(club=other_club, name="Plain").exists()


# Updating and destroying ---------------------------------------------------------------------


@pytest.mark.parametrize("method", ["put", "patch"])
def test_updating_a_group_changes_only_its_own_fields(
    api: APIClient, club: Club, other_club: Club, method: str
) -> None:
    group = GroupFactory(club=club, name="Red", type="Color")
    services.add_member_ids(
        group=group, member_ids=[MemberFactory(club=club).pk], source="api", actor="test"
    )
    before = stored(group)

    response = getattr(api, method)(
        f"members_groups/{group.pk}",
        {
            "name": "Crimson",
            "description": "Darker",
            "system": False,
            "automatic": True,
            "members_count": 0,
            "id": group.pk + 1000,
            "club": other_club.pk,
        },
    )

    assert response.status_code == 200
    assert response.json()["name"] == "Crimson"
    assert response.json()["type"] == "Color"
    assert response.json()["members_count"] == 1
    group.refresh_from_db()
    assert (group.name, group.type, group.description) == ("Crimson", "Color", "Darker")
    assert stored(group) == before


def test_updating_with_system_true_is_422_and_changes_nothing(api: APIClient, club: Club) -> None:
    group = GroupFactory(club=club, name="Red")

    response = api.patch(f"members_groups/{group.pk}", {"name": "New", "system": True})

    assert response.status_code == 422
    assert response.json()["details"] == {"system": [{"error": "not_allowed", "options": {}}]}
    group.refresh_from_db()
    assert (group.name, group.system) == ("Red", False)


def test_a_manual_group_refuses_audience_fields_on_update(api: APIClient, club: Club) -> None:
    group = GroupFactory(club=club, name="Red")
    audience_id = group.audience_id

    response = api.patch(
        f"members_groups/{group.pk}",
        {"audience_conditions": [cond("string", "email", "match", "x")]},
    )

    assert response.status_code == 422
    assert response.json()["details"] == {
        "audience_conditions": [{"error": "not_allowed_for_manual_group", "options": {}}]
    }
    group.refresh_from_db()
    assert group.audience_id == audience_id
    assert group.audience.conditions == own_rule(group.pk)


def test_null_audience_fields_count_as_absent(api: APIClient, club: Club) -> None:
    group = GroupFactory(club=club, name="Red")

    response = api.put(
        f"members_groups/{group.pk}",
        {"name": "Red 2", "audience_id": None, "audience_conditions": None},
    )

    assert response.status_code == 200
    assert response.json()["automatic"] is False


@pytest.mark.parametrize("method", ["put", "patch", "delete"])
def test_changing_or_destroying_a_system_group_is_405(
    api: APIClient, all_members: MembersGroup, method: str
) -> None:
    before = stored(all_members), all_members.name

    response = getattr(api, method)(f"members_groups/{all_members.pk}", {"name": "Mine"})

    assert response.status_code == 405
    assert response.json() == {
        "error": "System groups are maintained by the system and cannot be changed or destroyed."
    }
    assert (stored(all_members), all_members.name) == before


SYSTEM_BODIES = [
    pytest.param(None, id="the-group-as-read"),
    pytest.param({"system": True}, id="system-true"),
    pytest.param({}, id="empty-object"),
    pytest.param(b"[1, 2]", id="not-an-object"),
    pytest.param(b'{"name": ', id="not-json"),
    pytest.param({"audience_conditions": {"operator": "nope"}}, id="bad-conditions"),
]


@pytest.mark.parametrize("body", SYSTEM_BODIES)
@pytest.mark.parametrize("method", ["put", "patch", "delete"])
def test_a_system_group_is_405_whatever_the_body(
    api: APIClient, all_members: MembersGroup, method: str, body: Any
) -> None:
    """Not the 422 or 400 the body would earn elsewhere: no body could ever be accepted."""
    before = stored(all_members), all_members.name
    read = api.get(f"members_groups/{all_members.pk}").json()
    sent = json.dumps(read).encode() if body is None else body
    if isinstance(sent, dict):
        sent = json.dumps(sent).encode()

    response = api.generic(
        method.upper(),
        f"members_groups/{all_members.pk}",
        sent,
        content_type="application/json",
    )

    assert response.status_code == 405, response.json()
    assert response.json() == {
        "error": "System groups are maintained by the system and cannot be changed or destroyed."
    }
    assert (stored(all_members), all_members.name) == before


@pytest.mark.parametrize("method", ["post", "delete"])
@pytest.mark.parametrize("body", [b"", b"[]", b'{"identifiers": 5}'])
def test_bulk_changes_to_a_system_group_are_405_whatever_the_body(
    api: APIClient, all_members: MembersGroup, method: str, body: bytes
) -> None:
    response = api.generic(
        method.upper(),
        f"members_groups/{all_members.pk}/members",
        body,
        content_type="application/json",
    )

    assert response.status_code == 405
    assert "System groups" in response.json()["error"]


@pytest.mark.parametrize("method", ["put", "patch"])
def test_a_manual_group_read_and_sent_back_with_one_change_is_accepted(
    api: APIClient, club: Club, method: str
) -> None:
    group = GroupFactory(club=club, name="Red", description="Warm")
    read = api.get(f"members_groups/{group.pk}").json()

    response = getattr(api, method)(f"members_groups/{group.pk}", {**read, "name": "Crimson"})

    assert response.status_code == 200, response.json()
    assert {**response.json(), "updated_at": None} == {
        **read,
        "name": "Crimson",
        "updated_at": None,
    }
    group.refresh_from_db()
    assert (group.name, group.description, group.audience_id) == (
        "Crimson",
        "Warm",
        read["audience_id"],
    )
    assert group.audience.conditions == own_rule(group.pk)


def test_a_manual_group_takes_its_own_rule_as_one_condition_object(
    api: APIClient, club: Club
) -> None:
    group = GroupFactory(club=club, name="Red")

    response = api.put(
        f"members_groups/{group.pk}",
        {"name": "Crimson", "audience_conditions": own_rule(group.pk)[0]},
    )

    assert response.status_code == 200, response.json()
    assert response.json()["audience_conditions"] == own_rule(group.pk)


def test_a_manual_group_refuses_only_the_audience_field_that_changed(
    api: APIClient, club: Club
) -> None:
    group = GroupFactory(club=club, name="Red")
    other = GroupFactory(club=club)
    read = api.get(f"members_groups/{group.pk}").json()

    new_rule = api.put(
        f"members_groups/{group.pk}",
        {**read, "name": "Crimson", "audience_conditions": own_rule(other.pk)},
    )
    new_audience = api.put(f"members_groups/{group.pk}", {**read, "audience_id": other.audience_id})

    assert new_rule.status_code == new_audience.status_code == 422
    refused = [{"error": "not_allowed_for_manual_group", "options": {}}]
    assert new_rule.json()["details"] == {"audience_conditions": refused}
    assert new_audience.json()["details"] == {"audience_id": refused}
    group.refresh_from_db()
    assert (group.name, group.audience.conditions) == ("Red", own_rule(group.pk))


def test_destroying_a_group_returns_204_and_records_the_leaves(
    api: APIClient, club: Club, all_members: MembersGroup
) -> None:
    group = GroupFactory(club=club)
    member = MemberFactory(club=club)
    services.add_member_ids(group=group, member_ids=[member.pk], source="api", actor="test")

    response = api.delete(f"members_groups/{group.pk}")

    assert response.status_code == 204
    assert response.content == b""
    assert not MembersGroup.objects.filter(pk=group.pk).exists()
    assert not Audience.objects.filter(pk=group.audience_id).exists()
    assert MembershipEvent.objects.filter(
        group_id=group.pk, member_id=member.pk, kind=EventKind.LEFT, actor="token:tests"
    ).exists()
    assert Member.objects.filter(pk=member.pk).exists()


RULE = [cond("number", "id", "gte", 1)]


def test_destroying_a_group_keeps_the_audience_a_client_created_and_it_followed(
    api: APIClient, club: Club
) -> None:
    audience_id = api.post("audiences", {"name": "Everyone", "conditions": RULE}).json()["id"]
    first = api.post("members_groups", {"name": "A", "audience_id": audience_id}).json()["id"]
    second = api.post("members_groups", {"name": "B", "audience_id": audience_id}).json()["id"]

    assert api.delete(f"members_groups/{first}").status_code == 204
    assert api.delete(f"members_groups/{second}").status_code == 204

    audience = api.get(f"audiences/{audience_id}")
    assert audience.status_code == 200
    assert audience.json()["conditions"] == RULE


def test_destroying_a_group_removes_the_audience_made_from_its_conditions(
    api: APIClient, club: Club
) -> None:
    group = api.post("members_groups", {"name": "A", "audience_conditions": RULE}).json()

    assert api.delete(f"members_groups/{group['id']}").status_code == 204

    assert api.get(f"audiences/{group['audience_id']}").status_code == 404


def test_new_conditions_for_a_group_following_a_clients_audience_leave_that_audience_alone(
    api: APIClient, club: Club
) -> None:
    audience_id = api.post("audiences", {"name": "Everyone", "conditions": RULE}).json()["id"]
    group_id = api.post("members_groups", {"name": "A", "audience_id": audience_id}).json()["id"]
    narrower = [cond("number", "id", "gte", 2)]

    response = api.patch(f"members_groups/{group_id}", {"audience_conditions": narrower})

    assert response.status_code == 200
    assert response.json()["audience_conditions"] == narrower
    made = response.json()["audience_id"]
    assert made != audience_id
    assert api.get(f"audiences/{audience_id}").json()["conditions"] == RULE

    # The audience made for it is the group's own: changed in place, removed on leaving it.
    widest = [cond("number", "id", "gte", 0)]
    again = api.patch(f"members_groups/{group_id}", {"audience_conditions": widest}).json()
    assert again["audience_id"] == made
    back = api.patch(f"members_groups/{group_id}", {"audience_id": audience_id})
    assert back.json()["audience_id"] == audience_id
    assert api.get(f"audiences/{made}").status_code == 404
    assert api.get(f"audiences/{audience_id}").json()["conditions"] == RULE


def test_an_automatic_group_read_and_sent_back_whole_is_accepted_unchanged(
    api: APIClient, club: Club
) -> None:
    audience_id = api.post("audiences", {"name": "Everyone", "conditions": RULE}).json()["id"]
    group = api.post(
        "members_groups",
        {"name": "A", "audience_id": audience_id, "audience_conditions": RULE},
    ).json()
    assert (group["automatic"], group["audience_id"]) == (True, audience_id)

    response = api.put(f"members_groups/{group['id']}", {**group, "name": "B"})

    assert response.status_code == 200
    assert response.json() == {**group, "name": "B", "updated_at": response.json()["updated_at"]}
    other = api.put(
        f"members_groups/{group['id']}",
        {"audience_id": audience_id, "audience_conditions": [cond("number", "id", "gte", 2)]},
    )
    assert other.status_code == 422
    assert other.json()["details"] == {
        "audience_conditions": [
            {"error": "not_the_audiences", "options": {"audience_id": audience_id}}
        ]
    }


# A group's members --------------------------------------------------------------------------


@pytest.fixture
def crowd(club: Club) -> tuple[MembersGroup, list[Member]]:
    """A manual group holding 5 of the club's 6 members."""
    members = MemberFactory.create_batch(6, club=club)
    group = GroupFactory(club=club, name="Crowd")
    services.add_member_ids(
        group=group, member_ids=[m.pk for m in members[1:]], source="api", actor="test"
    )
    return group, members[1:]


def test_listing_a_groups_members_pages_by_member_id(
    api: APIClient, crowd: tuple[MembersGroup, list[Member]]
) -> None:
    group, members = crowd

    response = api.get(f"members_groups/{group.pk}/members", {"per_page": 2, "page_no": 2})

    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"members", "pagination_info"}
    assert [m["id"] for m in body["members"]] == [members[2].pk, members[3].pk]
    assert body["members"][0]["email"] == members[2].email
    assert body["pagination_info"] == {
        "total_count": 5,
        "per_page": 2,
        "total_pages": 3,
        "current_page": 2,
        "next_page": 3,
        "prev_page": 1,
        "is_first_page": False,
        "is_last_page": False,
        "is_out_of_range": False,
    }


def test_a_groups_members_sort_by_id_descending(
    api: APIClient, crowd: tuple[MembersGroup, list[Member]]
) -> None:
    group, members = crowd

    response = api.get(f"members_groups/{group.pk}/members?sort_by[]=id&sort_directions[]=desc")

    assert [m["id"] for m in response.json()["members"]] == [m.pk for m in reversed(members)]


def test_a_groups_members_sort_by_member_fields_in_order_then_by_id(
    api: APIClient, club: Club
) -> None:
    group = GroupFactory(club=club)
    made = [
        MemberFactory(club=club, email=email, msisdn=msisdn)
        for email, msisdn in [
            ("b@example.com", "4740000003"),
            ("a@example.com", None),
            ("c@example.com", "4740000001"),
            ("d@example.com", "4740000002"),
        ]
    ]
    MemberFactory(club=club, email="0-outside@example.com")
    services.add_member_ids(
        group=group, member_ids=[m.pk for m in made], source="api", actor="test"
    )
    path = f"members_groups/{group.pk}/members"

    def ids(query: str) -> list[int]:
        response = api.get(f"{path}?{query}")
        assert response.status_code == 200, response.json()
        return [m["id"] for m in response.json()["members"]]

    b, a, c, d = (m.pk for m in made)
    assert ids("sort_by[]=email") == [a, b, c, d]
    assert ids("sort_by[]=email&sort_directions[]=desc") == [d, c, b, a]
    # No msisdn sorts last either way.
    assert ids("sort_by[]=msisdn") == [c, d, b, a]
    assert ids("sort_by[]=msisdn&sort_directions[]=desc") == [b, d, c, a]
    assert ids("sort_by[]=email&sort_directions[]=desc&per_page=3&page_no=2") == [a]
    assert ids("sort_by[]=email&email=c@example.com") == [c]
    info = api.get(f"{path}?sort_by[]=email&per_page=3").json()["pagination_info"]
    assert (info["total_count"], info["total_pages"], info["next_page"]) == (4, 2, 2)


def test_a_groups_members_as_they_were_sort_by_member_fields(api: APIClient, club: Club) -> None:
    group = GroupFactory(club=club)
    zed = MemberFactory(club=club, email="zed@example.com")
    amy = MemberFactory(club=club, email="amy@example.com")
    services.add_member_ids(group=group, member_ids=[zed.pk, amy.pk], source="api", actor="test")
    then = timezone.now()
    services.remove_member_ids(group=group, member_ids=[amy.pk], source="api", actor="test")

    response = api.get(
        f"members_groups/{group.pk}/members",
        {"sort_by[]": "email", "at": then.isoformat()},
    )

    assert [m["id"] for m in response.json()["members"]] == [amy.pk, zed.pk]


def test_a_groups_members_sorted_by_another_field_than_id_cannot_be_walked_by_after_id(
    api: APIClient, crowd: tuple[MembersGroup, list[Member]]
) -> None:
    path = f"members_groups/{crowd[0].pk}/members"

    response = api.get(f"{path}?sort_by[]=email&after_id=0")
    unknown = api.get(f"{path}?sort_by[]=properties")

    assert response.status_code == 422
    assert response.json()["details"] == {
        "after_id": [{"error": "requires_sort_by_id", "options": {}}]
    }
    assert unknown.status_code == 422
    assert unknown.json()["details"] == {
        "sort_by": {
            "0": [
                {
                    "error": "invalid_choice",
                    "options": {"choices": ["id", "email", "msisdn", "created_at", "updated_at"]},
                }
            ]
        }
    }


def test_the_member_list_total_is_the_stored_count_not_a_count_of_rows(
    api: APIClient, crowd: tuple[MembersGroup, list[Member]]
) -> None:
    group, _members = crowd
    # A count drifted behind the services' back shows through: the list never counts rows.
    MembersGroup.objects.filter(pk=group.pk).update(members_count=1_000_000)

    info = api.get(f"members_groups/{group.pk}/members").json()["pagination_info"]

    assert (info["total_count"], info["total_pages"]) == (1_000_000, 10_000)


def test_a_groups_members_take_the_member_filters(
    api: APIClient, club: Club, crowd: tuple[MembersGroup, list[Member]]
) -> None:
    group, members = crowd
    outsider = Member.objects.filter(club=club).exclude(pk__in=[m.pk for m in members]).get()
    Member.objects.filter(pk=members[1].pk).update(properties={"tier": "gold"})
    Member.objects.filter(pk=members[3].pk).update(properties={"tier": "gold"})
    Member.objects.filter(pk=outsider.pk).update(properties={"tier": "gold"})
    url = f"members_groups/{group.pk}/members"

    def listed(query: str) -> tuple[list[int], int]:
        response = api.get(f"{url}?{query}")
        assert response.status_code == 200, response.json()
        body = response.json()
        return [m["id"] for m in body["members"]], body["pagination_info"]["total_count"]

    gold = [members[1].pk, members[3].pk]
    assert listed("properties[tier]=gold") == (gold, 2)
    assert listed("properties[tier]=gold&sort_by[]=id&sort_directions[]=desc") == (gold[::-1], 2)
    assert listed("properties[tier]=gold&per_page=1&page_no=2") == ([members[3].pk], 2)
    assert listed(f"email={members[2].email.upper()}") == ([members[2].pk], 1)
    assert listed(f"ids[]={members[0].pk}&ids[]={outsider.pk}") == ([members[0].pk], 1)
    assert listed(f"search={outsider.email}") == ([], 0)
    assert api.get(f"{url}?email=not-an-email").status_code == 422


def test_member_filters_apply_to_a_group_as_it_was(
    api: APIClient, crowd: tuple[MembersGroup, list[Member]]
) -> None:
    group, members = crowd
    before = timezone.now()
    services.remove_member_ids(group=group, member_ids=[members[0].pk], source="api", actor="test")
    at = before.isoformat().replace("+00:00", "Z")

    body = api.get(
        f"members_groups/{group.pk}/members", {"at": at, "ids[]": [members[0].pk]}
    ).json()

    assert [m["id"] for m in body["members"]] == [members[0].pk]
    assert body["pagination_info"]["total_count"] == 1
    now = api.get(f"members_groups/{group.pk}/members", {"ids[]": [members[0].pk]}).json()
    assert (now["members"], now["pagination_info"]["total_count"]) == ([], 0)


def test_walking_a_group_with_after_id_visits_every_member_once(
    api: APIClient, crowd: tuple[MembersGroup, list[Member]]
) -> None:
    group, members = crowd
    seen: list[int] = []
    infos = []
    after_id = 0
    while after_id is not None:
        response = api.get(
            f"members_groups/{group.pk}/members", {"after_id": after_id, "per_page": 2}
        )
        assert response.status_code == 200
        seen += [m["id"] for m in response.json()["members"]]
        infos.append(response.json()["pagination_info"])
        after_id = infos[-1]["next_after_id"]

    assert seen == [m.pk for m in members]
    assert infos[0] == {
        "total_count": 5,
        "per_page": 2,
        "total_pages": 3,
        "current_page": None,
        "next_page": None,
        "prev_page": None,
        "is_first_page": True,
        "is_last_page": False,
        "is_out_of_range": False,
        "next_after_id": members[1].pk,
    }
    assert [info["is_first_page"] for info in infos] == [True, False, False]
    assert [info["is_last_page"] for info in infos] == [False, False, True]
    assert infos[-1]["next_after_id"] is None


def test_after_id_walks_down_when_sorted_descending(
    api: APIClient, crowd: tuple[MembersGroup, list[Member]]
) -> None:
    group, members = crowd

    response = api.get(
        f"members_groups/{group.pk}/members?after_id={members[3].pk}&per_page=10"
        "&sort_by[]=id&sort_directions[]=desc"
    )

    start = api.get(
        f"members_groups/{group.pk}/members?after_id=0&per_page=2"
        "&sort_by[]=id&sort_directions[]=desc"
    )

    assert [m["id"] for m in response.json()["members"]] == [
        members[2].pk,
        members[1].pk,
        members[0].pk,
    ]
    assert response.json()["pagination_info"]["is_first_page"] is False
    assert response.json()["pagination_info"]["next_after_id"] is None
    assert [m["id"] for m in start.json()["members"]] == [members[4].pk, members[3].pk]
    assert start.json()["pagination_info"]["is_first_page"] is True
    assert start.json()["pagination_info"]["next_after_id"] == members[3].pk


def test_pages_of_one_shape_read_each_groups_own_members(
    api: APIClient, club: Club, crowd: tuple[MembersGroup, list[Member]]
) -> None:
    group, members = crowd
    other = GroupFactory(club=club, name="Pair")
    services.add_member_ids(
        group=other, member_ids=[members[1].pk, members[4].pk], source="api", actor="test"
    )

    def page(of: MembersGroup, **query: Any) -> tuple[list[int], dict[str, Any]]:
        body = api.get(f"members_groups/{of.pk}/members", {"per_page": 2, **query}).json()
        return [m["id"] for m in body["members"]], body["pagination_info"]

    for _ in range(2):  # a shape's second page reads with what its first one compiled
        assert page(group, page_no=2)[0] == [members[2].pk, members[3].pk]
        assert page(other, page_no=2)[0] == []
        assert page(other, page_no=1)[0] == [members[1].pk, members[4].pk]
        walked, info = page(other, after_id=members[2].pk)
        assert (walked, info["is_first_page"]) == ([members[4].pk], False)
        walked, info = page(group, after_id=members[2].pk)
        assert (walked, info["is_first_page"]) == ([members[3].pk, members[4].pk], False)
    past_the_end = page(group, after_id=members[4].pk)
    assert past_the_end[0] == []
    assert (past_the_end[1]["is_first_page"], past_the_end[1]["next_after_id"]) == (False, None)
    before_the_start = page(other, after_id=members[0].pk)
    assert (before_the_start[0], before_the_start[1]["is_first_page"]) == (
        [members[1].pk, members[4].pk],
        True,
    )


def test_after_id_and_page_no_together_are_422(
    api: APIClient, crowd: tuple[MembersGroup, list[Member]]
) -> None:
    response = api.get(f"members_groups/{crowd[0].pk}/members?after_id=0&page_no=2")

    assert response.status_code == 422
    assert response.json()["details"] == {
        "page_no": [{"error": "not_allowed_with_after_id", "options": {}}]
    }


# Bulk membership ------------------------------------------------------------------------------


def test_adding_members_in_bulk_normalises_reports_and_counts(api: APIClient, club: Club) -> None:
    group = GroupFactory(club=club, name="Red")
    ann = MemberFactory(club=club, email="ann@example.com")
    bob = MemberFactory(club=club, email="bob@example.com")

    response = api.post(
        f"members_groups/{group.pk}/members",
        {
            "identifier_type": "email",
            "identifiers": [
                " ANN@example.com",
                "ann@example.com",
                "Bob@Example.COM",
                "nobody@example.com",
                "not-an-email",
                12,
            ],
            "club": 0,
        },
    )

    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"members_group", "added", "already_members", "not_found", "invalid"}
    assert (body["added"], body["already_members"]) == (2, 0)
    assert body["not_found"] == ["nobody@example.com"]
    assert body["invalid"] == ["not-an-email", 12]
    assert body["members_group"]["id"] == group.pk
    assert body["members_group"]["members_count"] == 2
    assert member_ids(group) == [ann.pk, bob.pk]
    assert set(
        MembershipEvent.objects.filter(group_id=group.pk).values_list("actor", "source")
    ) == {("token:tests", "api")}
    assert_consistent(group)


def test_adding_the_same_members_twice_changes_nothing_the_second_time(
    api: APIClient, club: Club
) -> None:
    group = GroupFactory(club=club)
    members = MemberFactory.create_batch(3, club=club)
    payload = {"identifier_type": "id", "identifiers": [str(m.pk) for m in members]}

    first = api.post(f"members_groups/{group.pk}/members", payload).json()
    events = MembershipEvent.objects.count()
    second = api.post(f"members_groups/{group.pk}/members", payload).json()

    assert (first["added"], first["already_members"]) == (3, 0)
    assert (second["added"], second["already_members"]) == (0, 3)
    assert second["members_group"]["members_count"] == 3
    assert MembershipEvent.objects.count() == events
    assert_consistent(group)


def test_emails_with_array_syntax_are_matched_exactly(api: APIClient, club: Club) -> None:
    # Identifiers reach PostgreSQL as one array literal: braces, quotes and "NULL" in an
    # email must stay part of it.
    group = GroupFactory(club=club)
    odd = [
        MemberFactory(club=club, email=email)
        for email in ("{ann}@example.com", "o'brien@example.com", "null@example.com")
    ]
    MemberFactory(club=club, email="ann@example.com")

    body = api.post(
        f"members_groups/{group.pk}/members",
        {
            "identifier_type": "email",
            "identifiers": [m.email for m in odd] + ["{nobody}@example.com"],
        },
    ).json()

    assert (body["added"], body["not_found"]) == (3, ["{nobody}@example.com"])
    assert member_ids(group) == sorted(m.pk for m in odd)
    assert_consistent(group)


def test_adding_by_msisdn_accepts_any_common_spelling(api: APIClient, club: Club) -> None:
    group = GroupFactory(club=club)
    ola = MemberFactory(club=club, email=None, msisdn="4740769126")

    body = api.post(
        f"members_groups/{group.pk}/members",
        {"identifier_type": "msisdn", "identifiers": ["+47 407 69 126", "004740769126", "12"]},
    ).json()

    assert (body["added"], body["not_found"], body["invalid"]) == (1, [], ["12"])
    assert member_ids(group) == [ola.pk]


def test_removing_members_in_bulk_reports_removed_and_not_members(
    api: APIClient, club: Club
) -> None:
    group = GroupFactory(club=club)
    inside, outside = MemberFactory.create_batch(2, club=club)
    services.add_member_ids(group=group, member_ids=[inside.pk], source="api", actor="test")

    response = api.delete(
        f"members_groups/{group.pk}/members",
        {"identifier_type": "id", "identifiers": [inside.pk, outside.pk, 99999999, "x"]},
    )

    assert response.status_code == 200
    assert response.json() == {
        "members_group": response.json()["members_group"],
        "removed": 1,
        "not_members": 1,
        "not_found": [99999999],
        "invalid": ["x"],
    }
    assert response.json()["members_group"]["members_count"] == 0
    assert member_ids(group) == []
    again = api.delete(
        f"members_groups/{group.pk}/members", {"identifier_type": "id", "identifiers": [inside.pk]}
    ).json()
    assert (again["removed"], again["not_members"]) == (0, 1)
    assert_consistent(group)


def test_more_identifiers_than_the_cap_is_422_and_changes_nothing(
    api: APIClient, club: Club, settings: Any
) -> None:
    settings.BULK_IDENTIFIERS_MAX = 5
    group = GroupFactory(club=club)
    members = MemberFactory.create_batch(6, club=club)

    response = api.post(
        f"members_groups/{group.pk}/members",
        {"identifier_type": "id", "identifiers": [m.pk for m in members]},
    )
    at_cap = api.post(
        f"members_groups/{group.pk}/members",
        {"identifier_type": "id", "identifiers": [m.pk for m in members[:5]]},
    )

    assert response.status_code == 422
    assert response.json() == {
        "error": "Invalid parameters",
        "details": {"identifiers": [{"error": "max_length", "options": {"count": 5}}]},
    }
    assert at_cap.status_code == 200
    assert at_cap.json()["added"] == 5
    assert member_ids(group) == [m.pk for m in members[:5]]


@pytest.mark.parametrize(
    ("payload", "details"),
    [
        (
            {},
            {
                "identifier_type": [{"error": "required", "options": {}}],
                "identifiers": [{"error": "required", "options": {}}],
            },
        ),
        (
            {"identifier_type": "phone", "identifiers": []},
            {
                "identifier_type": [
                    {"error": "invalid_choice", "options": {"choices": ["email", "msisdn", "id"]}}
                ]
            },
        ),
        (
            {"identifier_type": "email", "identifiers": "a@example.com"},
            {"identifiers": [{"error": "not_an_array", "options": {}}]},
        ),
    ],
)
def test_a_malformed_bulk_payload_is_422(
    api: APIClient, club: Club, payload: dict[str, Any], details: dict[str, Any]
) -> None:
    group = GroupFactory(club=club)
    MemberFactory(club=club, email="a@example.com")

    response = api.post(f"members_groups/{group.pk}/members", payload)

    assert response.status_code == 422
    assert response.json() == {"error": "Invalid parameters", "details": details}
    assert member_ids(group) == []


@pytest.mark.parametrize(
    ("identifier_type", "identifiers"),
    [
        ("email", ["a@example.com", {"a": 1}, None, True, 1.5, ["a@example.com"], 7]),
        ("id", ["{a}", {"a": 1}, None, True, 1.0, [1], "x"]),
        ("msisdn", ["4740000001", {"a": 1}, None, False, 4.5, [], "12"]),
    ],
)
def test_identifiers_of_another_json_type_are_reported_invalid_not_refused(
    api: APIClient, club: Club, identifier_type: str, identifiers: list[Any]
) -> None:
    group = GroupFactory(club=club)
    member = MemberFactory(club=club, email="a@example.com", msisdn="4740000001")
    sent = [str(member.pk) if item == "{a}" else item for item in identifiers]

    response = api.post(
        f"members_groups/{group.pk}/members",
        {"identifier_type": identifier_type, "identifiers": sent},
    )

    assert response.status_code == 200
    assert response.json()["added"] == 1
    assert response.json()["invalid"] == sent[1:]
    assert member_ids(group) == [member.pk]
    removed = api.delete(
        f"members_groups/{group.pk}/members",
        {"identifier_type": identifier_type, "identifiers": sent},
    )
    assert (removed.json()["removed"], removed.json()["invalid"]) == (1, sent[1:])


@pytest.mark.parametrize("method", ["post", "delete"])
def test_bulk_changes_to_a_system_group_are_405(
    api: APIClient, club: Club, all_members: MembersGroup, method: str
) -> None:
    member = MemberFactory(club=club)

    response = getattr(api, method)(
        f"members_groups/{all_members.pk}/members",
        {"identifier_type": "id", "identifiers": [member.pk]},
    )

    assert response.status_code == 405
    assert "System groups" in response.json()["error"]
    assert member_ids(all_members) == [member.pk]


@pytest.mark.parametrize("method", ["post", "delete"])
def test_bulk_changes_to_an_automatic_group_are_405(
    api: APIClient, club: Club, method: str
) -> None:
    gold = MemberFactory(club=club, email="ann@gold.example")
    silver = MemberFactory(club=club, email="bob@silver.example")
    group = services.create_group(
        club=club, name="Gold", audience_conditions=[cond("string", "email", "match", "@gold.")]
    )

    response = getattr(api, method)(
        f"members_groups/{group.pk}/members",
        {"identifier_type": "id", "identifiers": [gold.pk, silver.pk]},
    )

    assert response.status_code == 405
    assert response.json() == {
        "error": "An automatic group's members follow its conditions; they cannot be changed "
        "by hand."
    }
    assert member_ids(group) == [gold.pk]


def test_explaining_a_membership_marks_every_condition_node(api: APIClient, club: Club) -> None:
    ann = MemberFactory(club=club, email="ann@gold.example", properties={"first_name": "Ola"})
    group = services.create_group(
        club=club,
        name="Gold Olas",
        audience_conditions=[
            cond("string", "email", "match", "@gold."),
            {
                "operator": "or",
                "conditions": [
                    cond("string", "first_name", "eq", "Kari"),
                    cond("string", "first_name", "eq", "Ola"),
                ],
            },
        ],
    )

    response = api.get(f"members_groups/{group.pk}/members/{ann.pk}/explain")

    assert response.status_code == 200
    assert response.json() == {
        "members_group_id": group.pk,
        "member_id": ann.pk,
        "is_member": True,
        "matches": True,
        "conditions": [
            {**cond("string", "email", "match", "@gold."), "matches": True},
            {
                "operator": "or",
                "matches": True,
                "conditions": [
                    {**cond("string", "first_name", "eq", "Kari"), "matches": False},
                    {**cond("string", "first_name", "eq", "Ola"), "matches": True},
                ],
            },
        ],
    }


def test_explaining_a_manual_membership_reads_the_groups_own_rule(
    api: APIClient, club: Club
) -> None:
    group = GroupFactory(club=club)
    outsider = MemberFactory(club=club)

    body = api.get(f"members_groups/{group.pk}/members/{outsider.pk}/explain").json()

    assert (body["is_member"], body["matches"]) == (False, False)
    assert body["conditions"][0]["field"] == "members_group_ids"


def test_explaining_another_clubs_member_is_404(
    api: APIClient, club: Club, other_club: Club
) -> None:
    group = GroupFactory(club=club)
    stranger = MemberFactory(club=other_club)
    for member_id in (stranger.pk, 10**17):
        response = api.get(f"members_groups/{group.pk}/members/{member_id}/explain")
        assert response.status_code == 404
        assert response.json() == {"error": "Not found"}
