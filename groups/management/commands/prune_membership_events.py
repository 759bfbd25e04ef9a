"""``prune_membership_events``: drop old membership history, keeping the recent past exact."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from groups.ledger import prune_events
from loyalty.management.lookups import club_by_slug
from loyalty.models import Club


class Command(BaseCommand):
    help = (
        "Delete membership events older than --older-than-days (default: the setting "
        "MEMBERSHIP_EVENTS_RETENTION_DAYS; 0 keeps everything). Each member's last join "
        "before the cut is kept while it still holds, so the members of a group at any "
        "moment after the cut, and its stats from then on, stay exact."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--club", help="Only this club (its slug); default every club.")
        parser.add_argument("--older-than-days", type=int)

    def handle(
        self, *args: Any, club: str | None, older_than_days: int | None, **options: Any
    ) -> None:
        days = (
            settings.MEMBERSHIP_EVENTS_RETENTION_DAYS
            if older_than_days is None
            else older_than_days
        )
        if days < 0:
            raise CommandError("--older-than-days must not be negative.")
        if days == 0:
            self.stdout.write("Retention is forever (0 days): nothing to prune.")
            return
        cutoff = timezone.now() - timedelta(days=days)
        clubs = [club_by_slug(club)] if club else list(Club.objects.order_by("pk"))
        deleted = sum(prune_events(club=each, before=cutoff) for each in clubs)
        self.stdout.write(
            f"Deleted {deleted:,} membership events from before {cutoff:%Y-%m-%d %H:%M} UTC."
        )
