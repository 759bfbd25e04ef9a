"""A club's whole list (no filter given) is read by statements compiled once per shape
(``loyalty.api.club_lists``): each club's pages, in every order, are its own."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from groups.models import MembersGroup
from loyalty.models import Club
from members.models import Member
from tests.api_fixtures import ClubClient
from tests.factories import GroupFactory, MemberFactory

pytestmark = pytest.mark.django_db

# A sort query, and the order it gives (then by id, ascending unless id is sorted).
GROUP_ORDERS: list[tuple[dict[str, str], Callable[[MembersGroup], Any], bool]] = [
    ({}, lambda g: g.pk, False),
    ({"sort_by[]": "id", "sort_directions[]": "desc"}, lambda g: g.pk, True),
    ({"sort_by[]": "name", "sort_directions[]": "desc"}, lambda g: g.name, True),
    ({"sort_by[]": "members_count"}, lambda g: g.members_count, False),
]


def walk(client: ClubClient, path: str, key: str, query: dict[str, Any]) -> list[int]:
    """The ids on the pages of 2, up to the first page that is not full."""
    ids: list[int] = []
    for page_no in range(1, 10):
        body = client.get(path, {**query, "per_page": 2, "page_no": page_no}).json()
        ids += [row["id"] for row in body[key]]
        if len(body[key]) < 2:
            return ids
    raise AssertionError("more pages than rows")


def in_order(rows: list[Any], key: Callable[[Any], Any], descending: bool) -> list[int]:
    by_id = sorted(rows, key=lambda row: row.pk)
    return [row.pk for row in sorted(by_id, key=key, reverse=descending)]


@pytest.mark.parametrize(("query", "key", "descending"), GROUP_ORDERS)
def test_each_clubs_whole_groups_list_is_its_own_in_every_order(
    club: Club,
    other_club: Club,
    make_client: Callable[..., ClubClient],
    query: dict[str, str],
    key: Callable[[MembersGroup], Any],
    descending: bool,
) -> None:
    for n, name in enumerate(["Cedar", "Alder", "Birch", "Elm", "Fir"]):
        GroupFactory(club=club, name=name, description=f"{n}")
    for name in ["Oak", "Ash"]:
        GroupFactory(club=other_club, name=name)
    clients = [(club, make_client(club)), (other_club, make_client(other_club))]

    for _ in range(2):  # the second round reads with what the first compiled
        for owner, client in clients:
            expected = in_order(list(MembersGroup.objects.filter(club=owner)), key, descending)
            assert walk(client, "members_groups", "members_groups", query) == expected
            body = client.get("members_groups", {**query, "per_page": 2}).json()
            assert body["pagination_info"]["total_count"] == len(expected)


@pytest.mark.parametrize(
    ("query", "descending"),
    [({}, False), ({"sort_by[]": "id", "sort_directions[]": "desc"}, True)],
)
def test_each_clubs_whole_members_list_is_its_own(
    club: Club,
    other_club: Club,
    make_client: Callable[..., ClubClient],
    query: dict[str, str],
    descending: bool,
) -> None:
    MemberFactory.create_batch(5, club=club)
    MemberFactory.create_batch(3, club=other_club)
    clients = [(club, make_client(club)), (other_club, make_client(other_club))]

    for _ in range(2):
        for owner, client in clients:
            expected = in_order(list(Member.objects.filter(club=owner)), lambda m: m.pk, descending)
            assert walk(client, "members", "members", query) == expected
            body = client.get("members", {**query, "per_page": 2, "page_no": 2}).json()
            assert body["pagination_info"]["total_count"] == len(expected)
