"""The club and API token admin: created through the services, tokens shown once, staff scoped."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.urls import reverse

from groups.models import ALL_MEMBERS_KEY, MembersGroup
from groups.webhooks.models import WebhookEndpoint
from loyalty import services
from loyalty.models import ApiToken, Club, hash_token
from loyalty.permits import ALL_PERMITS, GROUPS_LIST, MEMBERS_SHOW

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff_client(staff_client_with: Callable[..., Client]) -> Client:
    """A staff member who manages ``club`` only, with the club and token permissions."""
    return staff_client_with(
        "loyalty.view_club",
        "loyalty.view_apitoken",
        "loyalty.add_apitoken",
        "loyalty.change_apitoken",
    )


def token_add_url() -> str:
    return reverse("admin:loyalty_apitoken_add")


def token_changelist_url() -> str:
    return reverse("admin:loyalty_apitoken_changelist")


def test_a_superuser_creates_a_club_with_its_all_members_group_and_managers(
    admin_client: Client,
) -> None:
    manager = get_user_model().objects.create_user("dora", is_staff=True)

    response = admin_client.post(
        reverse("admin:loyalty_club_add"),
        {
            "slug": "green-club",
            "name": "Green Club",
            "timezone": "Europe/Oslo",
            "managers": [manager.pk],
        },
    )

    assert response.status_code == 302
    club = Club.objects.get(slug="green-club")
    assert (club.name, club.timezone) == ("Green Club", "Europe/Oslo")
    assert list(club.managers.all()) == [manager]
    group = MembersGroup.objects.get(club=club, system_key=ALL_MEMBERS_KEY)
    assert (group.name, group.system, group.members_count) == ("All members", True, 0)


def test_an_unknown_time_zone_is_a_form_error(admin_client: Client) -> None:
    response = admin_client.post(
        reverse("admin:loyalty_club_add"),
        {"slug": "green-club", "name": "Green Club", "timezone": "Mars/Olympus"},
    )

    assert response.status_code == 200
    assert "timezone" in response.context["adminform"].form.errors
    assert not Club.objects.filter(slug="green-club").exists()


def test_staff_see_only_their_clubs_and_cannot_add_change_or_delete_clubs(
    staff_client: Client, club: Club, other_club: Club
) -> None:
    response = staff_client.get(reverse("admin:loyalty_club_changelist"))

    assert list(response.context["cl"].result_list) == [club]
    assert staff_client.get(reverse("admin:loyalty_club_change", args=[club.pk])).status_code == 200
    assert (
        staff_client.get(reverse("admin:loyalty_club_change", args=[other_club.pk])).status_code
        == 302
    )
    assert staff_client.get(reverse("admin:loyalty_club_add")).status_code == 403
    change = staff_client.post(
        reverse("admin:loyalty_club_change", args=[club.pk]),
        {"name": "Mine now", "timezone": "UTC", "managers": []},
    )
    assert change.status_code == 403
    club.refresh_from_db()
    assert club.name == "Red Club"
    assert club.managers.exists()


def test_creating_a_token_shows_its_raw_value_once_and_stores_only_its_hash(
    admin_client: Client, club: Club
) -> None:
    response = admin_client.post(
        token_add_url(),
        {"club": club.pk, "name": "Integration", "permits": [GROUPS_LIST, MEMBERS_SHOW]},
        follow=True,
    )

    assert response.status_code == 200
    raw = response.context["raw_token"]
    assert raw.encode() in response.content
    token = ApiToken.objects.get(club=club, name="Integration")
    assert token.key_hash == hash_token(raw)
    assert token.prefix == raw[:12]
    assert token.permits == [GROUPS_LIST, MEMBERS_SHOW]
    assert raw not in str(ApiToken.objects.filter(pk=token.pk).values().get())
    for url in (token_changelist_url(), reverse("admin:loyalty_apitoken_change", args=[token.pk])):
        page = admin_client.get(url).content.decode()
        assert raw not in page
        assert token.key_hash not in page


def test_the_all_permits_box_grants_every_permit(admin_client: Client, club: Club) -> None:
    admin_client.post(token_add_url(), {"club": club.pk, "name": "Everything", "all_permits": "on"})

    assert ApiToken.objects.get(name="Everything").permits == list(ALL_PERMITS)


def test_a_token_without_permits_is_a_form_error(admin_client: Client, club: Club) -> None:
    response = admin_client.post(token_add_url(), {"club": club.pk, "name": "Nothing"})

    assert response.status_code == 200
    assert "permits" in response.context["adminform"].form.errors
    assert not ApiToken.objects.exists()


def test_revoking_tokens_in_bulk_marks_only_them_revoked(admin_client: Client, club: Club) -> None:
    revoked, kept = (
        services.create_api_token(club=club, name=name, permits=[GROUPS_LIST])[0]
        for name in ("Old", "Current")
    )

    response = admin_client.post(
        token_changelist_url(), {"action": "revoke", "_selected_action": [revoked.pk]}
    )

    assert response.status_code == 302
    revoked.refresh_from_db()
    kept.refresh_from_db()
    assert revoked.revoked_at is not None
    assert kept.revoked_at is None


def test_a_token_is_never_edited_or_deleted_in_the_admin(admin_client: Client, club: Club) -> None:
    token, _raw = services.create_api_token(club=club, name="Fixed", permits=[GROUPS_LIST])
    change_url = reverse("admin:loyalty_apitoken_change", args=[token.pk])

    change = admin_client.post(change_url, {"name": "Renamed", "permits": list(ALL_PERMITS)})
    delete = admin_client.post(
        reverse("admin:loyalty_apitoken_delete", args=[token.pk]), {"post": "yes"}
    )

    assert (change.status_code, delete.status_code) == (403, 403)
    token.refresh_from_db()
    assert (token.name, token.permits) == ("Fixed", [GROUPS_LIST])


def test_staff_see_only_their_clubs_tokens_and_cannot_issue_one_for_another_club(
    staff_client: Client, club: Club, other_club: Club
) -> None:
    mine, _ = services.create_api_token(club=club, name="Mine", permits=[GROUPS_LIST])
    theirs, _ = services.create_api_token(club=other_club, name="Theirs", permits=[GROUPS_LIST])

    listed = staff_client.get(token_changelist_url()).context["cl"].result_list
    opened = staff_client.get(reverse("admin:loyalty_apitoken_change", args=[theirs.pk]))
    revoke = staff_client.post(
        token_changelist_url(), {"action": "revoke", "_selected_action": [theirs.pk]}
    )
    issue = staff_client.post(
        token_add_url(), {"club": other_club.pk, "name": "Sneaky", "all_permits": "on"}
    )

    assert list(listed) == [mine]
    assert opened.status_code == 302
    assert revoke.status_code in (200, 302)
    theirs.refresh_from_db()
    assert theirs.revoked_at is None
    assert "club" in issue.context["adminform"].form.errors
    assert not ApiToken.objects.filter(name="Sneaky").exists()


# The members list never counts facets (a full scan per choice on a large club): see
# tests/members/test_admin_hostile.py.
@pytest.mark.parametrize(
    "model",
    [
        "loyalty_apitoken",
        "groups_membersgroup",
        "audiences_audience",
        "groups_webhookendpoint",
        "groups_webhookdelivery",
    ],
)
def test_a_list_filtered_by_club_group_or_endpoint_shows_facet_counts(
    admin_client: Client, club: Club, other_club: Club, model: str
) -> None:
    # Something under each filter: the groups' and endpoints' choices come from rows.
    WebhookEndpoint.objects.create(club=club, url="https://hooks.example.com/in")
    url = reverse(f"admin:{model}_changelist")

    response = admin_client.get(url, {"_facets": "True"})

    assert response.status_code == 200
    page = response.content.decode()
    # Each club choice with its count ("All members" and its audience exist in every club).
    assert re.search(r"Red Club\s*\(\d+\)", page)
    if model == "groups_webhookdelivery":
        assert re.search(r"hooks.example.com[^<]*\(\d+\)", page)
