"""Periodic jobs of webhooks: the deliveries that are due, and pruning finished ones."""

from __future__ import annotations

from datetime import timedelta

from groups.webhooks import sending
from loyalty.scheduler import periodic


@periodic("send-webhooks", every=timedelta(minutes=1), by_hand="python manage.py send_webhooks")
def send_webhooks() -> str:
    """Make one attempt at every webhook delivery that is due and that no task holds (the
    worker sends and retries by itself; this covers the ImmediateBackend and lost tasks)."""
    return sending.outcome_line(sending.send_due_deliveries())


@periodic(
    "prune-webhook-deliveries",
    every=timedelta(hours=1),
    offset=timedelta(minutes=5),
    by_hand="python manage.py send_webhooks",
)
def prune_webhook_deliveries() -> str:
    """Delete the delivered and failed webhook deliveries older than
    WEBHOOKS_DELIVERIES_RETENTION_DAYS."""
    return f"pruned {sending.prune_old_deliveries():,} finished deliveries"
