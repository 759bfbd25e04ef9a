"""The members list by group (added by groups): filter, groups column, a member's groups, counts."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from groups import services
from groups.models import MembersGroup, Source
from loyalty.models import Club
from members import admin as members_admin
from members.models import Member
from tests.factories import GroupFactory, MemberFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff_client(staff_client_with: Callable[..., Client]) -> Client:
    return staff_client_with("members.view_member", "groups.view_membersgroup")


def changelist_url(query: str = "") -> str:
    return reverse("admin:members_member_changelist") + query


def group_url(group: MembersGroup) -> str:
    return reverse("admin:groups_membersgroup_change", args=[group.pk])


def add(group: MembersGroup, *members: Member) -> None:
    services.add_members(
        group=group,
        identifier_type="id",
        identifiers=[member.pk for member in members],
        source=Source.ADMIN,
        actor="user:ann",
    )


def listed(client: Client, query: str = "") -> list[Member]:
    response = client.get(changelist_url(query))
    assert response.status_code == 200
    return list(response.context["cl"].result_list)


def test_the_list_filters_by_group_offering_only_the_clubs_groups(
    staff_client: Client, club: Club, other_club: Club
) -> None:
    red = GroupFactory(club=club, name="Red")
    GroupFactory(club=other_club, name="Foreign")
    ann, bob, _cid = MemberFactory.create_batch(3, club=club)
    add(red, ann, bob)

    response = staff_client.get(changelist_url())
    choices = [
        choice["display"]
        for spec in response.context["cl"].filter_specs
        if spec.title == "members group"
        for choice in spec.choices(response.context["cl"])
    ]

    assert listed(staff_client, f"?group={red.pk}") == [ann, bob]
    assert choices == ["All", "All members", "Red"]


def test_filtering_by_another_clubs_group_lists_nobody(
    staff_client: Client, club: Club, other_club: Club
) -> None:
    foreign = GroupFactory(club=other_club)
    add(foreign, MemberFactory(club=other_club))
    MemberFactory(club=club)

    assert listed(staff_client, f"?group={foreign.pk}") == []
    assert listed(staff_client, "?group=abc") == []


def test_the_group_filter_is_a_semi_join_not_a_list_of_ids(
    staff_client: Client, club: Club
) -> None:
    red = GroupFactory(club=club)
    add(red, *MemberFactory.create_batch(3, club=club))

    with CaptureQueriesContext(connection) as queries:
        staff_client.get(changelist_url(f"?group={red.pk}"))

    page_query = next(
        q["sql"] for q in queries if 'FROM "members_member"' in q["sql"] and "LIMIT" in q["sql"]
    )
    assert "EXISTS" in page_query
    assert '"groups_membership"' in page_query


def test_each_row_lists_the_members_groups_with_links(staff_client: Client, club: Club) -> None:
    red, blue = GroupFactory(club=club, name="Red"), GroupFactory(club=club, name="Blue")
    ann, bob = MemberFactory.create_batch(2, club=club)
    add(red, ann, bob)
    add(blue, ann)

    page = staff_client.get(changelist_url()).content.decode()
    rows = page.split("<tbody>")[1].split("</tr>")

    assert (
        f'<a href="{group_url(MembersGroup.objects.get(club=club, system=True))}">All members</a>'
        f', <a href="{group_url(blue)}">Blue</a>, <a href="{group_url(red)}">Red</a>'
    ) in rows[0]
    assert f'<a href="{group_url(blue)}">Blue</a>' not in rows[1]
    assert f'<a href="{group_url(red)}">Red</a>' in rows[1]


def test_a_members_page_lists_its_groups_with_when_it_joined(
    staff_client_with: Callable[..., Client], club: Club
) -> None:
    client = staff_client_with("members.view_member", "members.change_member")
    red = GroupFactory(club=club, name="Red")
    GroupFactory(club=club, name="Blue")
    ann = MemberFactory(club=club)
    add(red, ann)

    page = client.get(reverse("admin:members_member_change", args=[ann.pk])).content.decode()
    groups = page.split('class="member-groups"')[1].split("</ul>")[0]

    assert groups.count("<li>") == 2
    assert f'<a href="{group_url(red)}">Red</a>, joined ' in groups
    assert "Blue" not in groups


def test_the_count_comes_from_stored_counts_for_a_club_or_a_group(
    staff_client: Client, club: Club
) -> None:
    red = GroupFactory(club=club)
    members = MemberFactory.create_batch(3, club=club)
    add(red, *members[:2])

    assert staff_client.get(changelist_url()).context["cl"].result_count == 3
    assert staff_client.get(changelist_url(f"?group={red.pk}")).context["cl"].result_count == 2
    with CaptureQueriesContext(connection) as queries:
        staff_client.get(changelist_url(f"?club={club.pk}&group={red.pk}"))
    assert not [q for q in queries if "COUNT(" in q["sql"]]


def test_other_filters_are_counted_up_to_a_cap(
    staff_client: Client, club: Club, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(members_admin, "COUNT_CAP", 2)
    MemberFactory.create_batch(3, club=club, email_status="enabled")

    response = staff_client.get(changelist_url("?email_status__exact=enabled"))

    assert response.context["cl"].result_count == 2
    assert "More than 2 members match" in response.content.decode()


def queries_for(client: Client, url: str) -> int:
    with CaptureQueriesContext(connection) as queries:
        assert client.get(url).status_code == 200
    return len(queries)


@pytest.mark.parametrize("query", ["", "?group={group}", "?email_status__exact=disabled"])
def test_the_members_list_runs_the_same_queries_for_one_member_or_a_full_page(
    staff_client: Client,
    club: Club,
    query: str,
    django_assert_max_num_queries: Callable[..., object],
) -> None:
    red = GroupFactory(club=club)
    add(red, MemberFactory(club=club))
    url = changelist_url(query.format(group=red.pk))
    few = queries_for(staff_client, url)

    members = MemberFactory.create_batch(120, club=club)
    add(red, *members)
    for index in range(4):
        add(GroupFactory(club=club, name=f"G{index}"), *members)

    assert queries_for(staff_client, url) == few
    with django_assert_max_num_queries(12):
        staff_client.get(url)
