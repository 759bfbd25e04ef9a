"""Webhooks: committed joins and leaves reach a local receiver, signed, batched and retried."""

from __future__ import annotations

import json
import socket
from collections import Counter
from collections.abc import Callable
from datetime import timedelta
from io import StringIO
from itertools import pairwise
from typing import Any

import pytest
import time_machine
from django.core.management import call_command
from django.db import transaction
from django.test import Client
from django.utils import timezone

from groups import services, webhooks
from groups.models import (
    DeliveryStatus,
    EventKind,
    MembersGroup,
    MembershipEvent,
    WebhookDelivery,
    WebhookEndpoint,
)
from loyalty import outbound
from loyalty.models import Club
from members.models import Member
from members.services import bulk_create_members
from tests.api_fixtures import ClubClient
from tests.factories import GroupFactory, MemberFactory, WebhookEndpointFactory
from tests.helpers import command_output
from tests.webhook_receiver import Received, Receiver, signature_verifies

pytestmark = pytest.mark.django_db


def add_by_api(api: ClubClient, group: MembersGroup, member_ids: list[int]) -> None:
    payload = {"identifier_type": "id", "identifiers": [str(pk) for pk in member_ids]}
    response = api.post(f"members_groups/{group.pk}/members", payload)
    assert response.status_code == 200, response.content


def send_due() -> str:
    return command_output("send_webhooks")


def test_a_bulk_add_is_posted_to_the_endpoint_signed_with_its_secret(
    api: ClubClient,
    club: Club,
    receiver: Receiver,
    django_capture_on_commit_callbacks: Any,
) -> None:
    endpoint = WebhookEndpointFactory(club=club, url=f"{receiver.url}/hooks")
    group = GroupFactory(club=club)
    members = MemberFactory.create_batch(3, club=club)
    receiver.requests.clear()

    with django_capture_on_commit_callbacks(execute=True):
        add_by_api(api, group, [m.pk for m in members])

    [request] = receiver.requests
    assert request.headers["Path"] == "/hooks"
    assert request.headers["Content-Type"] == "application/json"
    assert signature_verifies(endpoint.secret, request)
    assert not signature_verifies("another secret", request)
    assert abs(int(request.headers["X-Webhook-Timestamp"]) - timezone.now().timestamp()) < 60
    body = json.loads(request.body)
    delivery = WebhookDelivery.objects.latest("pk")
    assert body["delivery_id"] == delivery.pk == int(request.headers["X-Webhook-Id"])
    assert body["club"] == club.slug
    recorded = MembershipEvent.objects.filter(group_id=group.pk).order_by("id")
    assert body["events"] == [
        {
            "id": event.pk,
            "kind": "joined",
            "group_id": group.pk,
            "member_id": event.member_id,
            "source": "api",
            "occurred_at": event.created_at.isoformat().replace("+00:00", "Z"),
        }
        for event in recorded
    ]
    assert {e["member_id"] for e in body["events"]} == {m.pk for m in members}
    assert (delivery.status, delivery.attempts, delivery.response_status) == ("delivered", 1, 200)
    assert delivery.response_body == "thanks"


def test_a_bulk_add_of_10000_members_arrives_in_at_most_10_deliveries(
    api: ClubClient,
    club: Club,
    receiver: Receiver,
    django_capture_on_commit_callbacks: Any,
) -> None:
    WebhookEndpointFactory(club=club, url=receiver.url, on_leave=False)
    group = GroupFactory(club=club)
    ids = bulk_create_members(
        club=club,
        members=[Member(email=f"m{n}@bulk.example") for n in range(10_000)],
        source="import",
    )
    receiver.requests.clear()

    with django_capture_on_commit_callbacks(execute=True):
        add_by_api(api, group, ids)

    assert len(receiver.requests) <= 10
    received = [e["member_id"] for r in receiver.requests for e in r.events]
    assert sorted(received) == sorted(ids)


def test_every_event_reaches_each_endpoint_exactly_once_after_retries(
    api: ClubClient,
    club: Club,
    other_club: Club,
    receiver: Receiver,
    django_capture_on_commit_callbacks: Any,
) -> None:
    red, blue = GroupFactory(club=club), GroupFactory(club=club)
    everything = WebhookEndpointFactory(club=club, url=f"{receiver.url}/all")
    red_joins = WebhookEndpointFactory(
        club=club, url=f"{receiver.url}/red", group_ids=[red.pk], on_leave=False
    )
    WebhookEndpointFactory(club=other_club, url=f"{receiver.url}/other")
    WebhookEndpointFactory(club=club, url=f"{receiver.url}/off", active=False)
    tried: Counter[str] = Counter()

    def fail_each_first_attempt(request: Received) -> int:
        tried[request.headers["X-Webhook-Id"]] += 1
        return 500 if tried[request.headers["X-Webhook-Id"]] == 1 else 200

    receiver.answer = fail_each_first_attempt
    with django_capture_on_commit_callbacks(execute=True):
        ids = [m.pk for m in MemberFactory.create_batch(4, club=club)]
        add_by_api(api, red, ids[:3])
        add_by_api(api, blue, ids[1:])
        api.delete(
            f"members_groups/{red.pk}/members",
            {"identifier_type": "id", "identifiers": [str(ids[0])]},
        )
        api.delete(f"members/{ids[3]}")
    assert WebhookDelivery.objects.filter(status="pending").count() == len(tried) > 0

    with time_machine.travel(timezone.now() + timedelta(minutes=1), tick=False):
        assert "0 to retry, 0 failed" in send_due()

    def keys(events: Any) -> Counter[tuple[int, int, int, str]]:
        return Counter((e["id"], e["group_id"], e["member_id"], e["kind"]) for e in events)

    club_events = MembershipEvent.objects.filter(club=club).values_list(
        "id", "group_id", "member_id", "kind"
    )
    assert keys(e for r in receiver.accepted("/all") for e in r.events) == Counter(
        e for e in club_events
    )
    assert keys(e for r in receiver.accepted("/red") for e in r.events) == Counter(
        e for e in club_events if e[1] == red.pk and e[3] == EventKind.JOINED
    )
    assert not [r for r in receiver.requests if r.headers["Path"] in ("/other", "/off")]
    assert set(WebhookDelivery.objects.values_list("endpoint", "status")) == {
        (everything.pk, "delivered"),
        (red_joins.pk, "delivered"),
    }
    assert set(WebhookDelivery.objects.values_list("attempts", flat=True)) == {2}


def test_a_rolled_back_change_sends_nothing(
    club: Club, receiver: Receiver, django_capture_on_commit_callbacks: Any
) -> None:
    group = GroupFactory(club=club)
    member = MemberFactory(club=club)
    WebhookEndpointFactory(club=club, url=receiver.url)

    with (  # noqa: PT012
        django_capture_on_commit_callbacks(execute=True),
        pytest.raises(RuntimeError),
        transaction.atomic(),
    ):
        services.add_member_ids(group=group, member_ids=[member.pk], source="api")
        assert WebhookDelivery.objects.count() == 1
        raise RuntimeError("the request failed after the write")

    assert not WebhookDelivery.objects.exists()
    assert receiver.requests == []
    assert send_due().startswith("0 due")


def test_a_failing_endpoint_is_retried_with_back_off_for_24_hours_then_marked_failed(
    club: Club, receiver: Receiver, django_capture_on_commit_callbacks: Any
) -> None:
    receiver.answer = lambda request: 503
    WebhookEndpointFactory(club=club, url=receiver.url)
    start = timezone.now()
    with time_machine.travel(start, tick=False) as clock:
        with django_capture_on_commit_callbacks(execute=True):
            MemberFactory(club=club)
        delivery = WebhookDelivery.objects.get()
        attempts_at = [start]
        while delivery.status == DeliveryStatus.PENDING:
            clock.move_to(delivery.next_attempt_at)
            send_due()
            delivery.refresh_from_db()
            attempts_at.append(delivery.last_attempt_at)

    waits = [later - earlier for earlier, later in pairwise(attempts_at)]
    assert waits[:4] == [timedelta(seconds=s) for s in (30, 60, 120, 240)]
    assert max(waits) == timedelta(hours=1)
    assert attempts_at[-2] - start <= timedelta(hours=24) < attempts_at[-1] - start + waits[-1]
    assert delivery.status == DeliveryStatus.FAILED
    assert delivery.attempts == len(receiver.requests) == len(attempts_at)
    assert (delivery.response_status, delivery.response_body) == (503, "not now")
    assert delivery.error == "The endpoint answered 503."
    # Nothing else is due: a failed delivery waits for someone to resend it.
    assert send_due().startswith("0 due")


def test_members_leaving_by_deletion_and_by_group_deletion_are_sent_as_leaves(
    api: ClubClient, club: Club, receiver: Receiver, django_capture_on_commit_callbacks: Any
) -> None:
    WebhookEndpointFactory(club=club, url=receiver.url, on_join=False)
    group = GroupFactory(club=club)
    ann, bob = MemberFactory.create_batch(2, club=club)
    services.add_member_ids(group=group, member_ids=[ann.pk, bob.pk], source="api")
    receiver.requests.clear()

    with django_capture_on_commit_callbacks(execute=True):
        assert api.delete(f"members/{ann.pk}").status_code == 204
        assert api.delete(f"members_groups/{group.pk}").status_code == 204

    received = {
        (e["kind"], e["group_id"], e["member_id"]) for r in receiver.requests for e in r.events
    }
    all_members = MembersGroup.objects.get(club=club, system=True)
    assert received == {
        ("left", group.pk, ann.pk),
        ("left", all_members.pk, ann.pk),
        ("left", group.pk, bob.pk),
    }


def test_an_endpoint_on_a_private_address_is_refused_unless_allowed(
    club: Club, receiver: Receiver, settings: Any, django_capture_on_commit_callbacks: Any
) -> None:
    settings.WEBHOOKS_ALLOW_PRIVATE_ADDRESSES = False
    # Registered before the rule, or through a name that now resolves to a private address.
    WebhookEndpointFactory(club=club, url=receiver.url.replace("127.0.0.1", "localhost"))

    with django_capture_on_commit_callbacks(execute=True):
        MemberFactory(club=club)

    delivery = WebhookDelivery.objects.get()
    assert receiver.requests == []
    assert delivery.status == DeliveryStatus.FAILED
    assert delivery.error == "Refused: localhost is this service's own host."


# The admin ---------------------------------------------------------------------------------


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


# What can go wrong on the way ---------------------------------------------------------------


def pending_delivery(club: Club, receiver: Receiver, capture: Any) -> WebhookDelivery:
    """One delivery whose first attempt the receiver refused."""
    receiver.answer = lambda request: 500
    WebhookEndpointFactory(club=club, url=receiver.url)
    with capture(execute=True):
        MemberFactory(club=club)
    delivery = WebhookDelivery.objects.get()
    assert delivery.status == DeliveryStatus.PENDING
    receiver.answer = lambda request: 200
    return delivery


def run_when_due(delivery: WebhookDelivery) -> str:
    delivery.refresh_from_db()
    with time_machine.travel(delivery.next_attempt_at, tick=False):
        return send_due()


def test_an_answer_postgresql_cannot_store_is_still_recorded(
    club: Club, receiver: Receiver, django_capture_on_commit_callbacks: Any
) -> None:
    delivery = pending_delivery(club, receiver, django_capture_on_commit_callbacks)
    receiver.reply = b"ok\x00done"

    run_when_due(delivery)

    delivery.refresh_from_db()
    assert (delivery.status, delivery.response_body) == ("delivered", "ok\ufffddone")
    assert delivery.locked_until is None


def test_a_worker_that_overran_its_lease_cannot_overwrite_the_next_ones_result(
    club: Club, receiver: Receiver, django_capture_on_commit_callbacks: Any
) -> None:
    delivery = pending_delivery(club, receiver, django_capture_on_commit_callbacks)
    late = webhooks._claim(delivery.pk, delivery.next_attempt_at)
    assert late is not None

    with time_machine.travel(late + timedelta(seconds=1), tick=False):
        send_due()
    assert webhooks._finish(delivery, late, None, "TimeoutError: timed out", final=True) is None

    delivery.refresh_from_db()
    assert (delivery.status, delivery.error) == ("delivered", "")


def test_a_disabled_endpoint_keeps_its_deliveries_until_it_is_enabled_again(
    club: Club, receiver: Receiver, django_capture_on_commit_callbacks: Any
) -> None:
    delivery = pending_delivery(club, receiver, django_capture_on_commit_callbacks)
    WebhookEndpoint.objects.update(active=False)

    run_when_due(delivery)
    delivery.refresh_from_db()
    paused = (delivery.status, delivery.error, len(receiver.requests))
    WebhookEndpoint.objects.update(active=True)
    run_when_due(delivery)

    assert paused == ("pending", "The endpoint is disabled.", 1)
    delivery.refresh_from_db()
    assert delivery.status == "delivered"
    assert len(receiver.requests) == 2


def test_a_delivery_whose_events_were_pruned_fails_rather_than_sending_less(
    club: Club, receiver: Receiver, django_capture_on_commit_callbacks: Any
) -> None:
    group = GroupFactory(club=club)
    member = MemberFactory(club=club)
    services.add_member_ids(group=group, member_ids=[member.pk], source="api")
    receiver.answer = lambda request: 500
    WebhookEndpointFactory(club=club, url=receiver.url, on_join=False)
    with django_capture_on_commit_callbacks(execute=True):
        services.remove_member_ids(group=group, member_ids=[member.pk], source="api")
    delivery = WebhookDelivery.objects.get()
    receiver.answer = lambda request: 200

    with time_machine.travel(timezone.now() + timedelta(days=2), tick=False):
        call_command("prune_membership_events", "--older-than-days", "1", stdout=StringIO())
        send_due()

    delivery.refresh_from_db()
    assert delivery.status == "failed"
    assert delivery.error == "1 of its events no longer exist (pruned)."
    assert len(receiver.requests) == 1


@pytest.mark.parametrize(
    "url",
    [
        "http://0.0.0.0/hooks",
        "http://2130706433/hooks",
        "http://169.254.169.254/latest/meta-data",
        "http://[::ffff:127.0.0.1]/hooks",
        "http://[64:ff9b::a9fe:a9fe]/hooks",
        "http://[2002:7f00:1::]/hooks",
        "http://[fd00::1]/hooks",
        "https://example.com:99999/hooks",
        "http://printer.localhost/hooks",
        "http://[fec0::1]/hooks",
        "http://[4000::1]/hooks",
        "http://192.88.99.1/hooks",
        "https://example.com:0/hooks",
        "https://example.com:22/hooks",
        "http://example.com:25/hooks",
    ],
)
def test_urls_into_private_networks_are_refused(url: str, settings: Any) -> None:
    settings.WEBHOOKS_ALLOW_PRIVATE_ADDRESSES = False

    with pytest.raises(outbound.RefusedAddress):
        outbound.check_url(url)
    with pytest.raises(outbound.RefusedAddress):
        outbound.post_json(url, b"{}", {}, timeout=1)


def test_a_refused_address_is_never_connected_to(settings: Any) -> None:
    settings.WEBHOOKS_ALLOW_PRIVATE_ADDRESSES = False
    with socket.socket() as listener:
        listener.bind(("127.0.0.2", 0))
        listener.listen()
        listener.settimeout(0.3)
        port = listener.getsockname()[1]

        with pytest.raises(outbound.RefusedAddress, match=r"127\.0\.0\.2 is a private"):
            outbound.post_json(f"http://127.0.0.2:{port}/hooks", b"{}", {}, timeout=1)
        with pytest.raises(TimeoutError):
            listener.accept()


def test_staff_who_may_only_view_endpoints_do_not_see_the_secret(
    staff_client_with: Callable[..., Client], club: Club
) -> None:
    endpoint = WebhookEndpointFactory(club=club)
    viewer = staff_client_with("groups.view_webhookendpoint")

    page = viewer.get(f"/admin/groups/webhookendpoint/{endpoint.pk}/change/")

    assert page.status_code == 200
    assert endpoint.url.encode() in page.content
    assert endpoint.secret.encode() not in page.content


def test_send_webhooks_prunes_finished_deliveries_past_their_retention(
    club: Club, receiver: Receiver, settings: Any, django_capture_on_commit_callbacks: Any
) -> None:
    settings.WEBHOOKS_DELIVERIES_RETENTION_DAYS = 30
    start = timezone.now()
    with time_machine.travel(start - timedelta(days=31), tick=False):
        delivered_long_ago = pending_delivery(club, receiver, django_capture_on_commit_callbacks)
        run_when_due(delivered_long_ago)
        receiver.answer = lambda request: 500
        with django_capture_on_commit_callbacks(execute=True):
            MemberFactory(club=club)
    with django_capture_on_commit_callbacks(execute=True):
        MemberFactory(club=club)

    with time_machine.travel(start, tick=False):
        out = send_due()

    # A pending delivery is never pruned (the old one gets its last attempt); the new one stays.
    assert out.startswith("Pruned 1 finished deliveries older than 30 days.")
    assert not WebhookDelivery.objects.filter(pk=delivered_long_ago.pk).exists()
    assert WebhookDelivery.objects.count() == 2
