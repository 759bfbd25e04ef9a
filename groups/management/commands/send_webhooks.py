"""``send_webhooks``: send the webhook deliveries that are due now."""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from groups import webhooks
from groups.models import DeliveryStatus, WebhookDelivery


class Command(BaseCommand):
    help = (
        "Make one attempt at every pending webhook delivery that is due (first sends and "
        "retries). The task worker does this by itself on a backend that can defer tasks; "
        "run this from cron every minute with the ImmediateBackend, or as a safety net."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--limit", type=int, help="At most this many deliveries.")
        parser.add_argument(
            "--every",
            type=int,
            metavar="SECONDS",
            help="Keep running: send what is due, then again every SECONDS (a process of its own).",
        )

    def handle(self, *args: Any, limit: int | None, every: int | None, **options: Any) -> None:
        self.send_due(limit)
        while every:
            time.sleep(every)
            self.send_due(limit)

    def send_due(self, limit: int | None) -> None:
        ids = webhooks.due_delivery_ids(limit)
        for delivery_id in ids:
            webhooks.send_delivery(delivery_id=delivery_id)
        outcome = Counter(
            WebhookDelivery.objects.filter(pk__in=ids).values_list("status", flat=True)
        )
        self.stdout.write(
            f"{len(ids)} due: {outcome[DeliveryStatus.DELIVERED]} delivered, "
            f"{outcome[DeliveryStatus.PENDING]} to retry, {outcome[DeliveryStatus.FAILED]} failed."
        )
