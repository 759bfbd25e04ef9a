"""The send_webhooks command: due deliveries sent, finished ones pruned."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
import time_machine
from django.utils import timezone

from groups.webhooks.models import WebhookDelivery
from loyalty.models import Club
from tests.factories import MemberFactory
from tests.groups.webhooks.helpers import pending_delivery, run_when_due, send_due
from tests.webhook_receiver import Receiver

pytestmark = pytest.mark.django_db


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
