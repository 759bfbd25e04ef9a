"""One rule for the query string of every list: no filter is ever dropped in silence.

Array parameters take ``x[]=1&x[]=2``, ``x[0]=1&x[1]=2`` and ``x=1``; any other unknown
parameter is 422 naming it, with the accepted names in its options.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from groups import services as group_services
from groups.models import MembersGroup
from loyalty.models import Club
from members.models import Member
from tests.api_fixtures import ClubClient
from tests.factories import GroupFactory, MemberFactory

pytestmark = pytest.mark.django_db

PAGES = ["page_no", "per_page"]
SORTING = ["sort_by[]", "sort_directions[]"]
GROUP_FILTERS = ["automatic", "ids[]", "name", "search", "system", "type"]
MEMBER_FILTERS = [
    "email",
    "ids[]",
    "members_group_ids[]",
    "msisdn",
    "properties[<key>]",
    "properties[<key>][]",
    "search",
]


@dataclass(frozen=True)
class Lists:
    """A club with three groups (two of them holding ann and bob) and their events."""

    red: MembersGroup
    blue: MembersGroup
    green: MembersGroup
    ann: Member
    bob: Member

    def paths(self) -> dict[str, str]:
        return {
            "groups": "members_groups",
            "members": "members",
            "group members": f"members_groups/{self.red.pk}/members",
            "member groups": f"members/{self.ann.pk}/members_groups",
            "audiences": "audiences",
            "events": f"members_groups/{self.red.pk}/events",
        }


@pytest.fixture
def lists(club: Club) -> Lists:
    red = GroupFactory(club=club, name="Red")
    blue = GroupFactory(club=club, name="Blue")
    green = GroupFactory(club=club, name="Green")
    ann = MemberFactory(club=club, email="ann@example.com")
    bob = MemberFactory(club=club, email="bob@example.com")
    MemberFactory(club=club, email="cid@example.com")
    for group in (red, blue):
        group_services.add_member_ids(group=group, member_ids=[ann.pk, bob.pk], source="api")
    return Lists(red, blue, green, ann, bob)


def ids_of(response: Any) -> list[int]:
    assert response.status_code == 200, response.json()
    body = response.json()
    items = next(value for key, value in body.items() if key != "pagination_info")
    return [item["id"] for item in items]


# An id filter of each list, and the ids it picks out: (parameter, values, expected).
def id_filters(lists: Lists) -> dict[str, tuple[str, list[int], list[int]]]:
    red, blue, ann, bob = lists.red, lists.blue, lists.ann, lists.bob
    return {
        "groups": ("ids", [red.pk, blue.pk], [red.pk, blue.pk]),
        "members": ("members_group_ids", [blue.pk], [ann.pk, bob.pk]),
        "group members": ("ids", [bob.pk], [bob.pk]),
        "member groups": ("ids", [blue.pk], [blue.pk]),
        "audiences": ("ids", [red.audience_id], [red.audience_id]),
    }


@pytest.mark.parametrize(
    "name", ["groups", "members", "group members", "member groups", "audiences"]
)
def test_the_three_array_forms_filter_alike(api: ClubClient, lists: Lists, name: str) -> None:
    path = lists.paths()[name]
    param, values, expected = id_filters(lists)[name]
    brackets = "&".join(f"{param}[]={v}" for v in values)
    indexed = "&".join(f"{param}[{i}]={v}" for i, v in enumerate(reversed(values)))
    everyone = ids_of(api.get(path))

    assert ids_of(api.get(f"{path}?{brackets}")) == expected
    assert ids_of(api.get(f"{path}?{indexed}")) == expected
    assert ids_of(api.get(f"{path}?{param}={values[0]}")) == ids_of(
        api.get(f"{path}?{param}[]={values[0]}")
    )
    assert len(everyone) > len(expected)


def test_the_index_form_keeps_the_order_of_its_indexes(api: ClubClient, lists: Lists) -> None:
    ordered = api.get(
        "members_groups?system=false&sort_by[1]=id&sort_by[0]=name"
        "&sort_directions[1]=desc&sort_directions[0]=desc"
    )
    one = api.get("members_groups?system=false&sort_by=name")

    assert ids_of(ordered) == [lists.red.pk, lists.green.pk, lists.blue.pk]
    assert ids_of(one) == [lists.blue.pk, lists.green.pk, lists.red.pk]


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        # The silent filters, each of which answered the whole club.
        ("members_group_ids={blue}", ["ann", "bob"]),
        ("ids={bob}", ["bob"]),
        ("ids[0]={bob}", ["bob"]),
        ("properties[tier][0]=gold&properties[tier][1]=silver", ["ann"]),
        ("properties[tier]=gold", ["ann"]),
    ],
)
def test_the_filters_a_client_sends_without_brackets_are_applied(
    api: ClubClient, lists: Lists, query: str, expected: list[str]
) -> None:
    Member.objects.filter(pk=lists.ann.pk).update(properties={"tier": "gold"})
    names = {lists.ann.pk: "ann", lists.bob.pk: "bob"}

    listed = ids_of(api.get("members?" + query.format(blue=lists.blue.pk, bob=lists.bob.pk)))

    assert [names.get(pk) for pk in listed] == expected


@pytest.mark.parametrize(
    ("name", "accepted"),
    [
        ("groups", [*GROUP_FILTERS, *PAGES, *SORTING]),
        ("members", [*MEMBER_FILTERS, *PAGES, *SORTING]),
        ("group members", ["after_id", "at", *MEMBER_FILTERS, *PAGES, *SORTING]),
        ("member groups", [*GROUP_FILTERS, *PAGES, *SORTING]),
        ("audiences", ["ids[]", "name", "search", *PAGES, *SORTING]),
        (
            "events",
            ["kind", "member_id", *PAGES, "since", *SORTING, "source", "until"],
        ),
    ],
)
@pytest.mark.parametrize("unknown", ["serach", "sortby[]", "ids[x]", "page_no[]", "colour[0]"])
def test_an_unknown_parameter_is_422_naming_it_with_the_accepted_names(
    api: ClubClient, lists: Lists, name: str, accepted: list[str], unknown: str
) -> None:
    response = api.get(f"{lists.paths()[name]}?{unknown}=1&per_page=1")

    assert response.status_code == 422
    assert response.json() == {
        "error": "Invalid parameters",
        "details": {
            unknown: [
                {
                    "error": "unknown_parameter",
                    "options": {"accepted": sorted([*accepted, "format"])},
                }
            ]
        },
    }


def test_every_unknown_parameter_is_named_at_once(api: ClubClient, lists: Lists) -> None:
    response = api.get("members?colour=red&size=xl&search=ann")

    assert response.status_code == 422
    assert set(response.json()["details"]) == {"colour", "size"}


@pytest.mark.parametrize("name", ["groups", "members", "audiences", "events"])
def test_a_parameter_of_one_value_sent_twice_is_422(
    api: ClubClient, lists: Lists, name: str
) -> None:
    response = api.get(f"{lists.paths()[name]}?per_page=1&per_page=2")

    assert response.status_code == 422
    assert response.json()["details"] == {
        "per_page": [{"error": "not_a_single_value", "options": {"count": 2}}]
    }


@pytest.mark.parametrize("value", ["json", "api"])
def test_format_is_taken_and_changes_nothing(api: ClubClient, lists: Lists, value: str) -> None:
    for path in lists.paths().values():
        assert ids_of(api.get(f"{path}?format={value}")) == ids_of(api.get(path))


def test_the_stats_take_their_own_parameters_only(api: ClubClient, lists: Lists) -> None:
    path = f"members_groups/{lists.red.pk}/stats"

    fine = api.get(f"{path}?interval=week&since=2025-01-06&until=2025-01-19")
    unknown = api.get(f"{path}?interval=week&from=2025-01-06")

    assert fine.status_code == 200
    assert len(fine.json()["stats"]) == 2
    assert unknown.status_code == 422
    assert unknown.json()["details"] == {
        "from": [
            {
                "error": "unknown_parameter",
                "options": {"accepted": ["format", "interval", "since", "until"]},
            }
        ]
    }


def test_one_object_ignores_the_query_string(api: ClubClient, lists: Lists) -> None:
    """A show takes no parameters: they neither filter the object away nor refuse it."""
    response = api.get(f"members_groups/{lists.red.pk}?colour=red")

    assert response.status_code == 200


# The audiences list takes the other lists' filters and sorting ---------------------------


def test_audiences_filter_by_ids_name_and_search_and_sort(
    api: ClubClient, club: Club, lists: Lists
) -> None:
    gold = api.post("audiences", {"name": "Gold buyers", "conditions": []}).json()["id"]
    silver = api.post("audiences", {"name": "Silver buyers", "conditions": []}).json()["id"]

    assert ids_of(api.get(f"audiences?ids[]={silver}&ids[]={gold}")) == [gold, silver]
    assert ids_of(api.get("audiences?name=Gold buyers")) == [gold]
    assert ids_of(api.get("audiences?name=gold buyers")) == []
    assert ids_of(api.get("audiences?search=BUYERS")) == [gold, silver]
    assert ids_of(api.get("audiences?search=BUYERS&sort_by[]=name&sort_directions[]=desc")) == [
        silver,
        gold,
    ]
    assert ids_of(api.get("audiences?search=")) == ids_of(api.get("audiences"))


def test_bad_audience_filter_values_are_422(api: ClubClient) -> None:
    ids = api.get("audiences?ids[]=1&ids[]=x")
    sort = api.get("audiences?sort_by[]=colour")

    assert (ids.status_code, sort.status_code) == (422, 422)
    assert ids.json()["details"] == {
        "ids": {"1": [{"error": "invalid", "options": {"value": "x"}}]}
    }
    assert sort.json()["details"] == {
        "sort_by": {
            "0": [
                {
                    "error": "invalid_choice",
                    "options": {"choices": ["id", "name", "created_at", "updated_at"]},
                }
            ]
        },
    }
