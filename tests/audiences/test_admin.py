"""The audience admin: edits through audiences.services, readable rule errors, guarded deletes."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from audiences import services
from audiences.models import Audience
from groups import services as group_services
from loyalty.models import Club
from tests.factories import GroupFactory, MemberFactory
from tests.helpers import cond

pytestmark = pytest.mark.django_db

GOLD = [cond("string", "email", "match", "@gold.example")]


@pytest.fixture
def staff_client(staff_client_with: Callable[..., Client]) -> Client:
    """A staff member who manages ``club`` only, with the audience permissions."""
    return staff_client_with(
        "audiences.view_audience",
        "audiences.add_audience",
        "audiences.change_audience",
        "audiences.delete_audience",
    )


def change_url(audience: Audience) -> str:
    return reverse("admin:audiences_audience_change", args=[audience.pk])


def changelist_url() -> str:
    return reverse("admin:audiences_audience_changelist")


def form_errors(response: Any) -> dict[str, list[str]]:
    assert response.status_code == 200
    return dict(response.context["adminform"].form.errors)


def test_the_audience_list_names_the_groups_using_each(admin_client: Client, club: Club) -> None:
    group = GroupFactory(club=club, name="VIP")

    response = admin_client.get(changelist_url())

    assert group.audience in response.context["cl"].result_list
    assert reverse("admin:groups_membersgroup_change", args=[group.pk]) in response.content.decode()


def test_creating_an_audience_in_the_admin_validates_and_keeps_its_conditions(
    admin_client: Client, club: Club
) -> None:
    response = admin_client.post(
        reverse("admin:audiences_audience_add"),
        {"club": club.pk, "name": "Gold", "conditions": json.dumps(GOLD)},
    )

    assert response.status_code == 302
    assert Audience.objects.get(club=club, name="Gold").conditions == GOLD


def test_editing_an_audience_recomputes_the_groups_that_follow_it(
    admin_client: Client, club: Club
) -> None:
    ann = MemberFactory(club=club, email="ann@gold.example")
    bob = MemberFactory(club=club, email="bob@silver.example")
    audience = services.create_audience(club=club, name="Gold", conditions=GOLD)
    follower = group_services.create_group(club=club, name="Tier", audience_id=audience.pk)
    assert set(follower.memberships.values_list("member_id", flat=True)) == {ann.pk}

    response = admin_client.post(
        change_url(audience),
        {
            "name": "Silver",
            "conditions": json.dumps([cond("string", "email", "match", "@silver.example")]),
        },
    )

    assert response.status_code == 302
    audience.refresh_from_db()
    assert audience.name == "Silver"
    assert set(follower.memberships.values_list("member_id", flat=True)) == {bob.pk}


@pytest.mark.parametrize(
    ("conditions", "message"),
    [
        # Not '{"not": "an array"}': one condition object counts as a list of one, as in the API.
        ('"not an array"', "Enter a JSON array."),
        ("[1]", "item 0: Enter a JSON object."),
        (json.dumps([cond("number", "id", "gt", "x")]), "item 0 > value: Not a number."),
    ],
)
def test_malformed_conditions_are_a_readable_form_error(
    conditions: str, message: str, admin_client: Client, club: Club
) -> None:
    audience = services.create_audience(club=club, name="Gold", conditions=GOLD)

    response = admin_client.post(change_url(audience), {"name": "Gold", "conditions": conditions})

    assert form_errors(response) == {"conditions": [message]}
    audience.refresh_from_db()
    assert audience.conditions == GOLD


def test_a_manual_groups_audience_keeps_its_rule_whatever_is_posted(
    admin_client: Client, club: Club
) -> None:
    group = GroupFactory(club=club)
    rule = group.audience.conditions

    page = admin_client.get(change_url(group.audience))
    response = admin_client.post(
        change_url(group.audience), {"name": "Renamed", "conditions": json.dumps(GOLD)}
    )

    assert "conditions" not in page.context["adminform"].form.fields
    assert response.status_code == 302
    group.audience.refresh_from_db()
    assert (group.audience.name, group.audience.conditions) == ("Renamed", rule)


def test_an_audience_used_by_a_group_is_not_deleted_but_an_unused_one_is(
    admin_client: Client, club: Club
) -> None:
    used = GroupFactory(club=club).audience
    unused = services.create_audience(club=club, name="Spare")

    delete = admin_client.post(
        reverse("admin:audiences_audience_delete", args=[used.pk]), {"post": "yes"}
    )
    bulk = admin_client.post(
        changelist_url(),
        {"action": "delete_selected", "_selected_action": [used.pk, unused.pk], "post": "yes"},
    )
    assert delete.status_code == 403
    assert bulk.status_code == 200
    assert b"cannot be deleted" in bulk.content
    assert Audience.objects.filter(pk__in=[used.pk, unused.pk]).count() == 2

    alone = admin_client.post(
        changelist_url(),
        {"action": "delete_selected", "_selected_action": [unused.pk], "post": "yes"},
    )
    assert alone.status_code == 302
    assert not Audience.objects.filter(pk=unused.pk).exists()
    assert Audience.objects.filter(pk=used.pk).exists()


def test_staff_see_and_reach_only_the_audiences_of_their_clubs(
    staff_client: Client, club: Club, other_club: Club
) -> None:
    mine = services.create_audience(club=club, name="Mine")
    theirs = services.create_audience(club=other_club, name="Theirs")

    listed = staff_client.get(changelist_url()).context["cl"].result_list
    opened = staff_client.get(change_url(theirs))
    deleted = staff_client.post(
        reverse("admin:audiences_audience_delete", args=[theirs.pk]), {"post": "yes"}
    )

    assert mine in listed
    assert not any(audience.club_id == other_club.pk for audience in listed)
    assert (opened.status_code, deleted.status_code) == (302, 302)
    assert Audience.objects.filter(pk=theirs.pk).exists()


def test_a_system_groups_audience_is_read_only_in_the_admin(
    admin_client: Client, club: Club, all_members: Any
) -> None:
    audience = all_members.audience
    page = admin_client.get(change_url(audience))

    posted = admin_client.post(
        change_url(audience), {"club": club.pk, "name": "Renamed", "conditions": "[]"}
    )

    assert page.status_code == 200
    assert 'name="_save"' not in page.content.decode()
    assert posted.status_code == 403
    audience.refresh_from_db()
    assert audience.name == "All members"
