"""Odd query strings and forged posts on the admin lists answer with a page or a redirect,
never a server error; a new API token is shown once, on a page reached by a redirect."""

from __future__ import annotations

import pytest
from django.contrib.auth.base_user import AbstractBaseUser
from django.contrib.messages import get_messages
from django.test import Client
from django.urls import reverse

from groups.models import MembersGroup
from groups.webhooks.models import WebhookEndpoint
from loyalty import services
from loyalty.admin import admin_id
from loyalty.models import ApiToken, Club, hash_token
from loyalty.permits import GROUPS_LIST
from tests.factories import GroupFactory

pytestmark = pytest.mark.django_db

# The lists filtered by loyalty.admin.ClubFilter (the members list has its own filter).
CLUB_FILTERED = [
    "groups_membersgroup",
    "audiences_audience",
    "loyalty_apitoken",
    "groups_webhookendpoint",
    "groups_webhookdelivery",
    "members_memberimport",
]
NOTHING_SELECTED = "Items must be selected in order to perform actions on them."


def changelist_url(model: str) -> str:
    return reverse(f"admin:{model}_changelist")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("1", 1),
        ("007", 7),
        (str(2**63 - 1), 2**63 - 1),
        (None, None),
        ("", None),
        ("0", None),
        ("-1", None),
        (" 1", None),
        ("1.0", None),
        ("abc", None),
        ("²", None),  # a digit to str.isdigit(), refused by int()
        ("٣", None),  # an Arabic-Indic three, which int() would take
        (str(2**63), None),
        ("99999999999999999999999", None),
        ("9" * 5000, None),  # beyond int()'s own limit on digits
    ],
)
def test_admin_id_takes_only_ascii_digits_within_a_bigint(
    value: str | None, expected: int | None
) -> None:
    assert admin_id(value) == expected


@pytest.mark.parametrize("model", CLUB_FILTERED)
def test_a_club_filter_value_that_is_a_unicode_digit_lists_nothing(
    admin_client: Client, club: Club, model: str
) -> None:
    response = admin_client.get(changelist_url(model), {"club": "²"})

    assert response.status_code == 200
    assert list(response.context["cl"].result_list) == []


@pytest.mark.parametrize("value", ["²", "99999999999999999999999"])
def test_an_endpoint_filter_value_that_is_not_an_id_lists_nothing(
    admin_client: Client, club: Club, value: str
) -> None:
    WebhookEndpoint.objects.create(club=club, url="https://hooks.example.com/in")

    response = admin_client.get(changelist_url("groups_webhookdelivery"), {"endpoint": value})

    assert response.status_code == 200
    assert list(response.context["cl"].result_list) == []


@pytest.mark.parametrize(
    ("model", "query"),
    [
        ("groups_membersgroup", {"type": "\x00"}),
        ("groups_membersgroup", {"club": "\x00"}),
        ("members_member", {"sms_status": "\x00"}),
        ("members_member", {"sms_status__exact": "\x00"}),
        ("members_member", {"q": "\x00"}),
        ("audiences_audience", {"club": "1\x00"}),
        ("loyalty_apitoken", {"name": "\x00"}),
        ("groups_webhookendpoint", {"q": "hooks\x00"}),
        ("groups_webhookdelivery", {"status": "\x00"}),
        ("groups_webhookdelivery", {"endpoint": "\x00", "_facets": "True"}),
        ("members_memberimport", {"status": "\x00"}),
    ],
)
def test_a_nul_in_a_list_query_redirects_as_an_incorrect_lookup_does(
    admin_client: Client, club: Club, model: str, query: dict[str, str]
) -> None:
    url = changelist_url(model)

    response = admin_client.get(url, query)

    assert response.status_code == 302
    assert response["Location"] == f"{url}?e=1"


@pytest.mark.parametrize(
    "forged",
    [
        {"index": "0", "_selected_action": ["abc"]},
        {"index": "0", "_selected_action": ["²"]},
        {"index": "0", "_selected_action": ["99999999999999999999999"]},
        # The confirmation page's "Yes" has no index; one good id does not save the rest.
        {"post": "yes", "_selected_action": ["{pk}", "abc"]},
        {"index": "0", "select_across": "1", "_selected_action": ["abc"]},
    ],
)
def test_a_forged_action_on_an_id_that_is_not_one_changes_nothing(
    admin_client: Client, club: Club, forged: dict[str, str | list[str]]
) -> None:
    group = GroupFactory(club=club, name="Kept")
    selected = [value.format(pk=group.pk) for value in forged["_selected_action"]]
    url = changelist_url("groups_membersgroup")

    response = admin_client.post(
        url, {**forged, "action": "delete_selected", "_selected_action": selected}
    )

    assert response.status_code == 302
    assert any(NOTHING_SELECTED in str(message) for message in get_messages(response.wsgi_request))
    assert MembersGroup.objects.filter(pk=group.pk).exists()


def test_a_forged_revoke_on_an_id_that_is_not_one_revokes_nothing(
    admin_client: Client, club: Club
) -> None:
    token, _raw = services.create_api_token(club=club, name="Kept", permits=[GROUPS_LIST])

    response = admin_client.post(
        changelist_url("loyalty_apitoken"),
        {"action": "revoke", "index": "0", "_selected_action": [str(token.pk), "²"]},
    )

    assert response.status_code == 302
    token.refresh_from_db()
    assert token.revoked_at is None


def test_a_new_token_is_shown_once_after_a_redirect_and_a_reload_creates_nothing(
    admin_client: Client, club: Club
) -> None:
    created = admin_client.post(
        reverse("admin:loyalty_apitoken_add"),
        {"club": club.pk, "name": "Integration", "permits": [GROUPS_LIST]},
    )
    token = ApiToken.objects.get(club=club, name="Integration")
    shown_url = reverse("admin:loyalty_apitoken_created", args=[token.pk])

    assert created.status_code == 302
    assert created["Location"] == shown_url
    shown = admin_client.get(shown_url)
    assert shown.status_code == 200
    raw = shown.context["raw_token"]
    assert raw.encode() in shown.content
    assert token.key_hash == hash_token(raw)
    # Popped as it was shown: the session keeps no copy.
    assert raw not in str(dict(admin_client.session))

    reloaded = admin_client.get(shown_url, follow=True)

    assert reloaded.redirect_chain == [(reverse("admin:loyalty_apitoken_changelist"), 302)]
    assert raw not in reloaded.content.decode()
    assert "shown only once" in reloaded.content.decode()
    assert list(ApiToken.objects.values_list("name", flat=True)) == ["Integration"]


def test_the_same_user_in_another_browser_never_sees_a_new_tokens_value(
    admin_client: Client, admin_user: AbstractBaseUser, club: Club
) -> None:
    admin_client.post(
        reverse("admin:loyalty_apitoken_add"),
        {"club": club.pk, "name": "Integration", "permits": [GROUPS_LIST]},
    )
    token = ApiToken.objects.get(club=club, name="Integration")
    shown_url = reverse("admin:loyalty_apitoken_created", args=[token.pk])
    elsewhere = Client()
    elsewhere.force_login(admin_user)

    response = elsewhere.get(shown_url)

    assert response.status_code == 302
    # Still there for the browser that created it.
    assert admin_client.get(shown_url).context["raw_token"]
