"""Periodic jobs of members groups: stalled work, relative dates, old history (the webhooks'
jobs are ``groups.webhooks.schedules``)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import timedelta
from zoneinfo import ZoneInfo

from django.conf import settings
from django.utils import timezone

from groups import ledger, services, tasks
from loyalty.models import Club
from loyalty.scheduler import claim, periodic, release
from members import import_services

logger = logging.getLogger(__name__)


@periodic(
    "resume-stalled-work",
    every=timedelta(minutes=1),
    by_hand="python manage.py resume_stalled_work",
)
def resume_stalled_work(report: Callable[[str], object] = logger.info) -> str:
    """Enqueue again the API member imports unmoved for MEMBER_IMPORT_STALE_SECONDS and the
    group recomputations pending for RECOMPUTE_STALE_SECONDS (a killed worker, a lost task)."""
    imports = import_services.resume_stale_imports()
    for member_import in imports:
        report(f"Resumed import {member_import.import_id!r} of club {member_import.club.slug}.")
    groups = services.resume_stale_recomputations()
    for group in groups:
        report(f"Recomputing again group {group.pk} ({group}) of club {group.club.slug}.")
    return (
        f"{len(imports)} import(s) unmoved for {settings.MEMBER_IMPORT_STALE_SECONDS} s, "
        f"{len(groups)} recomputation(s) pending for {settings.RECOMPUTE_STALE_SECONDS} s."
    )


@periodic(
    "relative-dates",
    every=timedelta(minutes=1),
    by_hand="python manage.py recompute_groups --relative-dates [--club SLUG]",
)
def refresh_relative_dates() -> str:
    """Once a day in each club's time zone, in the first minute of its day: enqueue the
    recomputation of the club's groups whose rules count days from today."""
    now = timezone.now()
    refreshed = []
    for zone in Club.objects.order_by().values_list("timezone", flat=True).distinct():
        today = now.astimezone(ZoneInfo(zone)).date()
        # A day of one time zone is claimed once, whichever scheduler process sees it first
        # (a late or restarted scheduler still refreshes the day it finds undone).
        day = f"relative-dates:{zone}:{today.isoformat()}"
        if claim(day, hold_for=timedelta(days=2)):
            try:
                for club_id in Club.objects.filter(timezone=zone).values_list("pk", flat=True):
                    tasks.refresh_relative_date_groups_task.enqueue(club_id=club_id)
                    refreshed.append(club_id)
            except Exception:
                # The queue refused (RQ with its Redis down): the next minute's run tries the
                # day again (a club refreshed twice changes nothing the second time).
                release(day)
                raise
    return f"enqueued the relative-date refresh of {len(refreshed)} club(s)"


@periodic(
    "prune-membership-events",
    every=timedelta(days=1),
    offset=timedelta(hours=2, minutes=15),
    by_hand="python manage.py prune_membership_events",
)
def prune_membership_events() -> str:
    """Delete the membership events older than MEMBERSHIP_EVENTS_RETENTION_DAYS (each
    member's last join before the cut stays while it holds)."""
    days = settings.MEMBERSHIP_EVENTS_RETENTION_DAYS
    if days <= 0:
        return "kept: MEMBERSHIP_EVENTS_RETENTION_DAYS is 0 (forever)"
    before = timezone.now() - timedelta(days=days)
    deleted = sum(ledger.prune_events(club=club, before=before) for club in Club.objects.all())
    return f"deleted {deleted:,} membership events older than {days} days"
