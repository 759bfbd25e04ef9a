"""The webhook admin: endpoints registered by club staff, deliveries read and resent."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.test import Client

from groups.webhooks.models import DeliveryStatus, WebhookDelivery, WebhookEndpoint
from loyalty.models import Club
from tests.factories import GroupFactory, MemberFactory, WebhookEndpointFactory
from tests.webhook_receiver import Receiver

pytestmark = pytest.mark.django_db


@pytest.fixture
def webhook_staff(staff_client_with: Callable[..., Client]) -> Client:
    return staff_client_with(
        "groups.add_webhookendpoint",
        "groups.change_webhookendpoint",
        "groups.view_webhookendpoint",
        "groups.view_webhookdelivery",
    )


def endpoint_form(club: Club, url: str, **fields: Any) -> dict[str, Any]:
    return {
        "club": club.pk,
        "url": url,
        "description": "CRM",
        "secret": "the-receivers-own-secret",
        "on_join": "on",
        "on_leave": "on",
        "active": "on",
        **fields,
    }


@pytest.mark.parametrize(
    ("url", "error"),
    [
        ("ftp://hooks.example.com/x", "Only http and https URLs"),
        ("http://127.0.0.2:8000/hooks", "127.0.0.2 is a private, loopback or reserved address"),
        ("http://127.0.0.1:8000/hooks", "127.0.0.1 is this service&#x27;s own host"),
        ("http://10.1.2.3/hooks", "10.1.2.3 is a private"),
        ("http://[::1]/hooks", "::1 is a private"),
        ("http://localhost/hooks", "localhost is this service&#x27;s own host"),
        ("https://example.com:99999/x", "The port is not valid"),
    ],
)
def test_staff_cannot_register_an_endpoint_the_service_must_not_call(
    webhook_staff: Client, club: Club, url: str, error: str
) -> None:
    response = webhook_staff.post("/admin/groups/webhookendpoint/add/", endpoint_form(club, url))

    assert response.status_code == 200
    assert error in response.content.decode()
    assert not WebhookEndpoint.objects.exists()


def test_staff_register_an_endpoint_for_chosen_groups_of_their_own_club(
    webhook_staff: Client, club: Club, other_club: Club
) -> None:
    red = GroupFactory(club=club)
    foreign = GroupFactory(club=other_club)
    url = "https://93.184.215.14/hooks"
    add = "/admin/groups/webhookendpoint/add/"

    offered = webhook_staff.get(add).context["adminform"].form["secret"].value()
    refused = webhook_staff.post(add, endpoint_form(club, url, groups=[foreign.pk]))
    too_short = webhook_staff.post(add, endpoint_form(club, url, secret="short"))
    saved = webhook_staff.post(add, endpoint_form(club, url, groups=[red.pk], secret=offered))

    assert len(offered) >= 40
    assert refused.status_code == too_short.status_code == 200
    assert "Select a valid choice" in refused.content.decode()
    assert "Use at least 16 characters" in too_short.content.decode()
    assert saved.status_code == 302
    endpoint = WebhookEndpoint.objects.get()
    assert (endpoint.club, endpoint.url, endpoint.group_ids) == (club, url, [red.pk])
    assert endpoint.secret == offered
    assert webhook_staff.get(add).context["adminform"].form["secret"].value() != offered


def test_staff_see_their_clubs_deliveries_and_resend_a_failed_one(
    webhook_staff: Client,
    club: Club,
    other_club: Club,
    receiver: Receiver,
    django_capture_on_commit_callbacks: Any,
) -> None:
    receiver.answer = lambda request: 500
    WebhookEndpointFactory(club=club, url=f"{receiver.url}/mine", description="mine")
    WebhookEndpointFactory(club=other_club, url=f"{receiver.url}/theirs", description="theirs")
    with django_capture_on_commit_callbacks(execute=True):
        MemberFactory(club=club)
        MemberFactory(club=other_club)
    mine = WebhookDelivery.objects.get(club=club)
    theirs = WebhookDelivery.objects.get(club=other_club)
    WebhookDelivery.objects.filter(pk=mine.pk).update(status=DeliveryStatus.FAILED)

    listing = webhook_staff.get("/admin/groups/webhookdelivery/").content.decode()
    receiver.answer = lambda request: 200
    with django_capture_on_commit_callbacks(execute=True):
        response = webhook_staff.post(
            "/admin/groups/webhookdelivery/",
            {"action": "resend", "_selected_action": [mine.pk, theirs.pk]},
        )

    assert f"?endpoint={mine.endpoint_id}" in listing
    assert "theirs" not in listing
    assert response.status_code == 302
    mine.refresh_from_db()
    # Resending starts the back-off (and the count of attempts) again.
    assert (mine.status, mine.attempts, mine.response_status) == ("delivered", 1, 200)
    assert [r.headers["Path"] for r in receiver.requests].count("/mine") == 2
    assert [r.headers["Path"] for r in receiver.requests].count("/theirs") == 1
    assert (
        webhook_staff.get(f"/admin/groups/webhookdelivery/{theirs.pk}/change/").status_code == 302
    )


def test_staff_who_may_only_view_endpoints_do_not_see_the_secret(
    staff_client_with: Callable[..., Client], club: Club
) -> None:
    endpoint = WebhookEndpointFactory(club=club)
    viewer = staff_client_with("groups.view_webhookendpoint")

    page = viewer.get(f"/admin/groups/webhookendpoint/{endpoint.pk}/change/")

    assert page.status_code == 200
    assert endpoint.url.encode() in page.content
    assert endpoint.secret.encode() not in page.content
