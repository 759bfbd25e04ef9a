"""What the webhook tests share: adding members by API, sending what is due, a pending delivery."""

from __future__ import annotations

from typing import Any

import time_machine

from groups.models import MembersGroup
from groups.webhooks.models import DeliveryStatus, WebhookDelivery
from loyalty.models import Club
from tests.api_fixtures import ClubClient
from tests.factories import MemberFactory, WebhookEndpointFactory
from tests.helpers import command_output
from tests.webhook_receiver import Receiver


def add_by_api(api: ClubClient, group: MembersGroup, member_ids: list[int]) -> None:
    payload = {"identifier_type": "id", "identifiers": [str(pk) for pk in member_ids]}
    response = api.post(f"members_groups/{group.pk}/members", payload)
    assert response.status_code == 200, response.content


def send_due() -> str:
    return command_output("send_webhooks")


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
