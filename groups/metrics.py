"""Gauges of members groups read at each scrape: recomputations waiting (the webhooks'
backlog is ``groups.webhooks.metrics``)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

from django.db.models import Count, Min
from prometheus_client.core import GaugeMetricFamily, Metric

from groups.models import MembersGroup
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
