"""Webhook deliveries: committed joins and leaves posted, signed, batched and retried."""

from __future__ import annotations

import json
from collections import Counter
from datetime import timedelta
from io import StringIO
from itertools import pairwise
from typing import Any

import pytest
import time_machine
from django.core.management import call_command
from django.db import transaction
from django.utils import timezone

from groups import services
from groups.models import EventKind, MembersGroup, MembershipEvent
from groups.webhooks import sending
from groups.webhooks.models import DeliveryStatus, WebhookDelivery, WebhookEndpoint
from loyalty.models import Club
from members.models import Member
from members.services import bulk_create_members
from tests.api_fixtures import ClubClient
from tests.factories import GroupFactory, MemberFactory, WebhookEndpointFactory
from tests.groups.webhooks.helpers import add_by_api, pending_delivery, run_when_due, send_due
from tests.webhook_receiver import Received, Receiver, signature_verifies

pytestmark = pytest.mark.django_db


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
    late = sending._claim(delivery.pk, delivery.next_attempt_at)
    assert late is not None

    with time_machine.travel(late + timedelta(seconds=1), tick=False):
        send_due()
    assert sending._finish(delivery, late, None, "TimeoutError: timed out", final=True) is None

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
