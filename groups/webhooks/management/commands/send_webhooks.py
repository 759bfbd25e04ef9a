"""``send_webhooks``: send the webhook deliveries that are due now."""

from __future__ import annotations

import time
from collections import Counter
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser
from django.utils import timezone

from groups.webhooks import sending
from groups.webhooks.models import DeliveryStatus, WebhookDelivery

# How often a long-running sweep prunes old deliveries.
PRUNE_EVERY_SECONDS = 3600


class Command(BaseCommand):
    help = (
        "Make one attempt at every pending webhook delivery that is due (first sends and "
        "retries) and prune finished deliveries older than WEBHOOKS_DELIVERIES_RETENTION_DAYS. "
        "The task worker sends by itself on a backend that can defer tasks; this is the "
        "Procfile's clock process (--every 60), the sweep for what no task holds."
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
        pruned_at = time.monotonic()
        self.prune()
        self.send_due(limit)
        while every:
            time.sleep(every)
            if time.monotonic() - pruned_at >= PRUNE_EVERY_SECONDS:
                pruned_at = time.monotonic()
                self.prune()
            self.send_due(limit)

    def prune(self) -> None:
        days = settings.WEBHOOKS_DELIVERIES_RETENTION_DAYS
        if days > 0:
            pruned = sending.prune_deliveries(before=timezone.now() - timedelta(days=days))
            if pruned:
                self.stdout.write(f"Pruned {pruned:,} finished deliveries older than {days} days.")

    def send_due(self, limit: int | None) -> None:
        ids = sending.due_delivery_ids(limit)
        for delivery_id in ids:
            sending.send_delivery(delivery_id=delivery_id)
        outcome = Counter(
            WebhookDelivery.objects.filter(pk__in=ids).values_list("status", flat=True)
        )
        self.stdout.write(
            f"{len(ids)} due: {outcome[DeliveryStatus.DELIVERED]} delivered, "
            f"{outcome[DeliveryStatus.PENDING]} to retry, {outcome[DeliveryStatus.FAILED]} failed."
        )
