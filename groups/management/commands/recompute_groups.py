"""Re-compute automatic groups and re-count every group, or check them (``--check``)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from groups import services
from groups.integrity import discrepancy
from groups.models import MembersGroup
from loyalty.models import Club


class Command(BaseCommand):
    help = (
        "Re-compute automatic groups as diffs and fix stored counts (all clubs, one club or one "
        "group). With --check, change nothing: report every group whose rows or count differ "
        "from the truth and exit with status 1 if any does."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--club", help="Only this club (slug).")
        parser.add_argument("--group", type=int, help="Only this group (id).")
        parser.add_argument("--check", action="store_true", help="Report, change nothing.")
        parser.add_argument(
            "--relative-dates",
            action="store_true",
            help="Only the groups whose rules count days from today (the scheduler runs it "
            "for each club just after its midnight).",
        )

    def handle(
        self,
        *args: Any,
        club: str | None,
        group: int | None,
        check: bool,
        relative_dates: bool,
        **options: Any,
    ) -> None:
        club_id = None
        if club is not None:
            club_id = Club.objects.filter(slug=club).values_list("pk", flat=True).first()
            if club_id is None:
                raise CommandError(f"No club with slug {club!r}.")
        if relative_dates:
            refreshed = services.refresh_relative_date_groups(club_id=club_id)
            self.stdout.write(self.style.SUCCESS(f"Refreshed {len(refreshed)} groups."))
            return
        groups = MembersGroup.objects.select_related("club", "audience").order_by("club_id", "pk")
        if club_id is not None:
            groups = groups.filter(club_id=club_id)
        if group is not None:
            groups = groups.filter(pk=group)
            if not groups.exists():
                raise CommandError(f"No group {group}" + (f" in club {club!r}." if club else "."))
        if check:
            self._check(list(groups))
            return
        for item in services.order_for_recompute(list(groups)):
            diff = services.recompute_group(group_id=item.pk, actor="command:recompute_groups")
            fixed = services.recount_group(group_id=item.pk)
            self.stdout.write(
                f"{item.club.slug} / {item.name} ({item.pk}): +{len(diff.joined)} "
                f"-{len(diff.left)}" + (f", count fixed {fixed[0]} -> {fixed[1]}" if fixed else "")
            )
        self.stdout.write(self.style.SUCCESS("Done."))

    def _check(self, groups: list[MembersGroup]) -> None:
        bad = pending = 0
        stale_before = timezone.now() - timedelta(seconds=settings.RECOMPUTE_STALE_SECONDS)
        for group in groups:
            found = discrepancy(group)
            if found.ok:
                continue
            label = f"{group.club.slug} / {group.name} ({group.pk})"
            # A rule whose recomputation is queued differs from its rows until the task runs;
            # its count still equals its rows, or something else is wrong. Queued for longer
            # than RECOMPUTE_STALE_SECONDS, its task is taken to be lost: a difference.
            queued = group.recomputing and found.stored_count == found.rows
            if queued and (group.recompute_requested_at or stale_before) > stale_before:
                pending += 1
                self.stdout.write(f"{label}: recomputation pending ({found.describe()})")
                continue
            bad += 1
            lost = (
                f"recomputation pending for over {settings.RECOMPUTE_STALE_SECONDS} s, its "
                "task lost? "
                if queued
                else ""
            )
            self.stdout.write(f"{label}: {lost}{found.describe()}")
        waiting = f" {pending} wait for their queued recomputation." if pending else ""
        if bad:
            raise CommandError(
                f"{bad} of {len(groups)} groups differ from the truth.{waiting}", returncode=1
            )
        exact = f"{len(groups) - pending} of {len(groups)}" if pending else f"All {len(groups)}"
        self.stdout.write(self.style.SUCCESS(f"{exact} groups are exact.{waiting}"))
