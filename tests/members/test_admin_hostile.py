"""The member admin against odd input: filter values, huge ids, duplicates, the delete page."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from groups import services as group_services
from groups.models import EventKind, MembersGroup, MembershipEvent, Source
from loyalty.models import Club
from members.models import Member
from tests.factories import GroupFactory, MemberFactory
from tests.helpers import member_form

pytestmark = pytest.mark.django_db

TOO_BIG = "99999999999999999999999"


def form_errors(response: Any) -> dict[str, list[str]]:
    assert response.status_code == 200
    return dict(response.context["adminform"].form.errors)


def add_url() -> str:
    return reverse("admin:members_member_add")


def changelist_url() -> str:
    return reverse("admin:members_member_changelist")


@pytest.mark.parametrize("who", ["admin_client", "staff_client"])
@pytest.mark.parametrize(
    "query",
    [
        {"club": "²"},
        {"group": "²"},
        {"club": "٣"},
        {"club": TOO_BIG},
        {"group": TOO_BIG},
        {"club": str(2**63)},
        {"club": "0"},
        {"club": "1" * 5000},
        {"group": "1" * 5000},
        {"club": "abc"},
    ],
)
def test_an_unusable_club_or_group_filter_lists_no_member(
    who: str, query: dict[str, str], request: pytest.FixtureRequest, club: Club
) -> None:
    client: Client = request.getfixturevalue(who)
    MemberFactory(club=club)

    response = client.get(changelist_url(), query)

    assert response.status_code == 200
    assert list(response.context["cl"].result_list) == []
    assert response.context["cl"].result_count == 0


def test_a_club_filter_beside_an_unusable_group_filter_lists_no_member(
    staff_client: Client, club: Club
) -> None:
    MemberFactory(club=club)

    response = staff_client.get(changelist_url(), {"club": str(club.pk), "group": "²"})

    assert response.status_code == 200
    assert list(response.context["cl"].result_list) == []


def test_the_members_list_never_counts_facets(admin_client: Client, club: Club) -> None:
    MemberFactory(club=club)

    response = admin_client.get(changelist_url(), {"_facets": "True"})

    assert response.status_code == 200
    assert response.context["cl"].add_facets is False
    assert b"Show counts" not in response.content
    # The stored count still gives the total: "_facets" does not narrow the list.
    assert response.context["cl"].paginator.known == 1


def test_the_delete_confirmation_counts_memberships_instead_of_listing_them(
    admin_client: Client, club: Club, all_members: MembersGroup
) -> None:
    red, blue = GroupFactory.create_batch(2, club=club)
    ann = MemberFactory(club=club, email="ann@example.com")
    bob = MemberFactory(club=club, email="bob@example.com")
    group_services.add_member_ids(group=red, member_ids=[ann.pk, bob.pk], source=Source.API)
    group_services.add_member_ids(group=blue, member_ids=[ann.pk], source=Source.API)

    response = admin_client.post(
        changelist_url(), {"action": "delete_selected", "_selected_action": [ann.pk, bob.pk]}
    )

    assert response.status_code == 200
    ann_url = reverse("admin:members_member_change", args=[ann.pk])
    bob_url = reverse("admin:members_member_change", args=[bob.pk])
    assert response.context["deletable_objects"] == [
        [
            f'Member: <a href="{ann_url}">ann@example.com</a>, who leaves 3 groups',
            f'Member: <a href="{bob_url}">bob@example.com</a>, who leaves 2 groups',
        ]
    ]
    assert dict(response.context["model_count"]) == {"members": 2, "memberships": 5}
    assert b"Membership:" not in response.content

    confirmed = admin_client.post(
        changelist_url(),
        {"action": "delete_selected", "_selected_action": [ann.pk, bob.pk], "post": "yes"},
    )

    assert confirmed.status_code == 302
    assert not Member.objects.exists()
    for group in (all_members, red, blue):
        group.refresh_from_db()
        assert group.members_count == 0
    assert MembershipEvent.objects.filter(kind=EventKind.LEFT, source="admin").count() == 5


def test_the_delete_confirmation_of_one_member_says_how_many_groups_it_leaves(
    admin_client: Client, club: Club, all_members: MembersGroup
) -> None:
    ann = MemberFactory(club=club, email="ann@example.com")

    response = admin_client.get(reverse("admin:members_member_delete", args=[ann.pk]))

    assert response.status_code == 200
    assert dict(response.context["model_count"]) == {"members": 1, "memberships": 1}
    assert "who leaves 1 group" in str(response.context["deleted_objects"][0])


@pytest.mark.parametrize(
    ("field", "taken", "typed", "message"),
    [
        (
            "email",
            "ann@example.com",
            "ANN@example.com",
            "Another member of this club has this email.",
        ),
        ("msisdn", "4740769126", "+47 407 69 126", "Another member of this club has this MSISDN."),
    ],
)
def test_adding_a_member_with_a_taken_email_or_msisdn_says_so_readably(
    field: str, taken: str, typed: str, message: str, admin_client: Client, club: Club
) -> None:
    MemberFactory(club=club, **{field: taken})

    response = admin_client.post(add_url(), member_form(club, **{field: typed}))

    assert form_errors(response) == {field: [message]}
    assert Member.objects.count() == 1


def test_the_same_email_in_another_club_is_not_taken(
    admin_client: Client, club: Club, other_club: Club
) -> None:
    MemberFactory(club=other_club, email="ann@example.com")

    response = admin_client.post(add_url(), member_form(club, email="ann@example.com"))

    assert response.status_code == 302
    assert Member.objects.get(club=club).email == "ann@example.com"


@pytest.mark.parametrize("field", ["subunit_ids", "favorite_stores"])
@pytest.mark.parametrize("value", ["[-5]", "[0]", f"[{2**63}]", f"[1, {TOO_BIG}]"])
def test_id_lists_take_only_positive_ids_within_a_bigint_as_the_api_does(
    field: str, value: str, admin_client: Client, club: Club
) -> None:
    response = admin_client.post(
        add_url(), member_form(club, email="ann@example.com", **{field: value})
    )

    assert set(form_errors(response)) == {field}
    assert not Member.objects.exists()


def test_id_lists_take_the_largest_bigint(admin_client: Client, club: Club) -> None:
    fields: dict[str, Any] = {"subunit_ids": f"[1, {2**63 - 1}]"}

    response = admin_client.post(add_url(), member_form(club, email="ann@example.com", **fields))

    assert response.status_code == 302
    assert Member.objects.get().subunit_ids == [1, 2**63 - 1]
