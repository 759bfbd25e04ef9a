"""``send_webhooks``: send the webhook deliveries that are due now."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser

from groups.webhooks import sending


class Command(BaseCommand):
    help = (
        "Make one attempt at every pending webhook delivery that is due (first sends and "
        "retries) and prune finished deliveries older than WEBHOOKS_DELIVERIES_RETENTION_DAYS. "
        "The task worker sends by itself on a backend that can defer tasks, and the scheduler "
        "process (run_scheduler) does this every minute: this runs it once, by hand."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--limit", type=int, help="At most this many deliveries.")

    def handle(self, *args: Any, limit: int | None, **options: Any) -> None:
        pruned = sending.prune_old_deliveries()
        if pruned:
            days = settings.WEBHOOKS_DELIVERIES_RETENTION_DAYS
            self.stdout.write(f"Pruned {pruned:,} finished deliveries older than {days} days.")
        self.stdout.write(sending.outcome_line(sending.send_due_deliveries(limit)))
