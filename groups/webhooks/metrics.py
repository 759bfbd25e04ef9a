"""Gauges of webhooks read at each scrape: deliveries pending and failed, the oldest due."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

from django.db.models import Count
from prometheus_client.core import GaugeMetricFamily, Metric

from groups.webhooks.models import DeliveryStatus, WebhookDelivery
from loyalty.metrics import PREFIX, gauges, seconds_since


@gauges
def webhook_deliveries(now: datetime) -> Iterator[Metric]:
    """Webhook deliveries not yet delivered: pending (to send or retry) and failed."""
    deliveries = GaugeMetricFamily(
        f"{PREFIX}webhook_deliveries",
        "Webhook deliveries pending (first send or retry) and failed (retries exhausted).",
        labels=["status"],
    )
    counts = dict(
        WebhookDelivery.objects.filter(status__in=[DeliveryStatus.PENDING, DeliveryStatus.FAILED])
        .order_by()
        .values_list("status")
        .annotate(Count("pk"))
    )
    for status in (DeliveryStatus.PENDING, DeliveryStatus.FAILED):
        deliveries.add_metric([status.value], counts.get(status, 0))
    yield deliveries
    oldest_due = (
        WebhookDelivery.objects.filter(status=DeliveryStatus.PENDING, next_attempt_at__lte=now)
        .order_by("next_attempt_at")
        .values_list("next_attempt_at", flat=True)
        .first()
    )
    yield GaugeMetricFamily(
        f"{PREFIX}webhook_oldest_due_seconds",
        "Seconds the longest-overdue pending delivery has been due (0: none is due).",
        value=seconds_since(oldest_due, now),
    )
