"""Pages of a group's members sorted by member fields: the same order whichever plan reads
them (the club walked in the field's order when the group is a large share of it, the group
sorted when it is small), with empty values last, ties by id, and page_no across both."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from groups import services
from groups.models import MembersGroup
from loyalty.models import Club
from members.models import Member
from tests.factories import GroupFactory, MemberFactory

pytestmark = pytest.mark.django_db

# 10 members: three without an email, two without an msisdn, created and updated in three
# instants each, so that every field has ties.
EMAILS = ["d@x.io", None, "a@x.io", "g@x.io", None, "c@x.io", "b@x.io", None, "f@x.io", "e@x.io"]
MSISDNS = [
    "4740000005",
    "4740000003",
    None,
    "4740000009",
    "4740000001",
    "4740000002",
    None,
    "4740000007",
    "4740000004",
    "4740000006",
]


@pytest.fixture
def made(club: Club) -> list[Member]:
    members = [
        MemberFactory(club=club, email=email, msisdn=msisdn)
        for email, msisdn in zip(EMAILS, MSISDNS, strict=True)
    ]
    start = timezone.now() - timedelta(days=3)
    for index, member in enumerate(members):
        # Written by hand: the services stamp both times themselves.
        Member.objects.filter(pk=member.pk).update(
            created_at=start + timedelta(hours=index % 3),
            updated_at=start + timedelta(hours=(index * 7) % 3),
        )
    return list(Member.objects.filter(pk__in=[m.pk for m in members]).order_by("pk"))


def expected(members: list[Member], keys: list[tuple[str, bool]]) -> list[int]:
    """The order the API promises: each key, empty values last either way, then id."""
    ordered = sorted(members, key=lambda m: m.pk)
    for field, descending in reversed(keys):
        present = [m for m in ordered if getattr(m, field) is not None]
        empty = [m for m in ordered if getattr(m, field) is None]
        # Stable, reversed or not: ties stay in the order the next key (or id) left them.
        present.sort(key=lambda m, field=field: getattr(m, field), reverse=descending)
        ordered = present + empty
    return [m.pk for m in ordered]


def walk(api: APIClient, group: MembersGroup, query: str, per_page: int) -> list[int]:
    """Every page of the group's members by page_no."""
    return pages(api, f"members_groups/{group.pk}/members?{query}", group.members_count, per_page)


def pages(api: APIClient, path: str, total: int, per_page: int) -> list[int]:
    """Every page of ``path`` by page_no, checking each page's pagination_info on the way."""
    ids: list[int] = []
    total_pages = -(-total // per_page)
    for page_no in range(1, total_pages + 2):
        response = api.get(f"{path}&per_page={per_page}&page_no={page_no}")
        assert response.status_code == 200, response.json()
        body: dict[str, Any] = response.json()
        info = body["pagination_info"]
        assert info["total_count"] == total
        assert info["total_pages"] == total_pages
        assert info["is_out_of_range"] == (page_no > total_pages)
        ids += [m["id"] for m in body["members"]]
    return ids


SORTS = [
    [("email", False)],
    [("email", True)],
    [("msisdn", False)],
    [("msisdn", True)],
    [("created_at", False)],
    [("created_at", True)],
    [("updated_at", True)],
    [("email", True), ("created_at", True)],
    [("created_at", False), ("msisdn", True)],
    [("updated_at", False), ("email", False)],
]


@pytest.mark.parametrize("keys", SORTS, ids=lambda keys: "+".join(f"{f}:{d}" for f, d in keys))
def test_sorted_pages_are_the_same_whichever_plan_reads_them(
    api: APIClient, club: Club, all_members: MembersGroup, made: list[Member], keys: Any
) -> None:
    few = GroupFactory(club=club)
    inside = made[1::2]  # half the club (with two of its empty emails)
    services.add_member_ids(
        group=few, member_ids=[m.pk for m in inside], source="api", actor="test"
    )
    few.refresh_from_db()
    all_members.refresh_from_db()
    query = "&".join(
        f"sort_by[]={field}&sort_directions[]={'desc' if descending else 'asc'}"
        for field, descending in keys
    )

    # "All members" is the whole club: walked while a page ends before its last member,
    # sorted beyond; the half group is walked for pages of 1 up to the 4th, sorted after
    # and for larger pages. Pages of 4 cross from the emails to the empty ones mid-page.
    for per_page in (1, 2, 3, 4, 10):
        assert walk(api, all_members, query, per_page) == expected(made, keys), per_page
        assert walk(api, few, query, per_page) == expected(inside, keys), per_page


def test_a_sorted_page_of_a_large_group_leaves_out_non_members_and_other_clubs(
    api: APIClient, club: Club, other_club: Club, made: list[Member]
) -> None:
    most = GroupFactory(club=club)
    inside = [m for m in made if m.pk != made[2].pk]  # all but a@x.io, the first email
    services.add_member_ids(
        group=most, member_ids=[m.pk for m in inside], source="api", actor="test"
    )
    MemberFactory(club=other_club, email="0@x.io")
    most.refresh_from_db()

    first = api.get(f"members_groups/{most.pk}/members?sort_by[]=email&per_page=2").json()
    last = api.get(
        f"members_groups/{most.pk}/members?sort_by[]=email&sort_directions[]=desc"
        "&per_page=1&page_no=7"
    ).json()

    assert [m["email"] for m in first["members"]] == ["b@x.io", "c@x.io"]
    assert first["pagination_info"]["total_count"] == 9
    # Descending, the 6 emails come first, then the 3 without one by id.
    assert [m["id"] for m in last["members"]] == [made[1].pk]


@pytest.mark.parametrize("keys", SORTS, ids=lambda keys: "+".join(f"{f}:{d}" for f, d in keys))
def test_the_members_list_sorted_pages_the_same_with_empty_values_last(
    api: APIClient, club: Club, made: list[Member], keys: Any
) -> None:
    few = GroupFactory(club=club)
    inside = made[:5]  # one of the empty emails, one of the empty msisdns
    services.add_member_ids(
        group=few, member_ids=[m.pk for m in inside], source="api", actor="test"
    )
    query = "&".join(
        f"sort_by[]={field}&sort_directions[]={'desc' if descending else 'asc'}"
        for field, descending in keys
    )

    # Pages of 3 and 4 cross from the values to the empty ones mid-page, pages of 1 and 2
    # also start past the values.
    for per_page in (1, 2, 3, 4, 10):
        assert pages(api, f"members?{query}", len(made), per_page) == expected(made, keys)
        in_few = pages(api, f"members?members_group_ids[]={few.pk}&{query}", 5, per_page)
        assert in_few == expected(inside, keys), per_page


def test_the_members_list_of_groups_counts_each_member_once(
    api: APIClient, club: Club, other_club: Club, made: list[Member]
) -> None:
    blue, green = GroupFactory(club=club), GroupFactory(club=club)
    theirs = GroupFactory(club=other_club)
    services.add_member_ids(
        group=blue, member_ids=[m.pk for m in made[:4]], source="api", actor="test"
    )
    services.add_member_ids(
        group=green, member_ids=[m.pk for m in made[2:6]], source="api", actor="test"
    )
    services.add_member_ids(
        group=theirs,
        member_ids=[MemberFactory(club=other_club).pk],
        source="api",
        actor="test",
    )

    def total(query: str) -> int:
        response = api.get(f"members?{query}")
        assert response.status_code == 200, response.json()
        info: dict[str, Any] = response.json()["pagination_info"]
        assert info["total_count"] == len(response.json()["members"])
        return int(info["total_count"])

    assert total(f"members_group_ids[]={blue.pk}&members_group_ids[]={green.pk}") == 6
    assert total(f"members_group_ids[0]={green.pk}") == 4
    assert total(f"members_group_ids[]={theirs.pk}") == 0
    assert total(f"members_group_ids[]={blue.pk}&members_group_ids[]={theirs.pk}") == 4
    # With another filter, the members that match both are counted.
    assert total(f"members_group_ids[]={blue.pk}&email=d@x.io") == 1
    assert api.get("members?members_group_ids[]=0").status_code == 422
