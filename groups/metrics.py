"""Gauges of members groups read at each scrape: recomputations and webhooks waiting."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

from django.db.models import Count, Min
from prometheus_client.core import GaugeMetricFamily, Metric

from groups.models import DeliveryStatus, MembersGroup, WebhookDelivery
from loyalty.metrics import PREFIX, gauges, seconds_since


@gauges
def recomputations(now: datetime) -> Iterator[Metric]:
    """Automatic groups whose background recomputation is pending, and the oldest's wait."""
    pending = MembersGroup.objects.filter(recomputing=True).aggregate(
        groups=Count("pk"), since=Min("recompute_requested_at")
    )
    yield GaugeMetricFamily(
        f"{PREFIX}groups_pending_recomputation",
        "Automatic groups whose background recomputation has not finished.",
        value=pending["groups"],
    )
    yield GaugeMetricFamily(
        f"{PREFIX}groups_pending_recomputation_oldest_seconds",
        "Seconds since the longest-pending recomputation was requested (0: none pending).",
        value=seconds_since(pending["since"], now),
    )


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
