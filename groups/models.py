"""Members groups, their membership rows and the membership history."""

from __future__ import annotations

import secrets

from django.db import models
from django.utils import timezone

from audiences.models import Audience
from loyalty.models import Club, ClubScopedModel
from members.models import Member

ALL_MEMBERS_KEY = "all_members"


class Source(models.TextChoices):
    """Which door a membership change came through."""

    API = "api"
    ADMIN = "admin"
    IMPORT = "import"
    RULE = "rule"
    SYSTEM = "system"


class EventKind(models.TextChoices):
    JOINED = "joined"
    LEFT = "left"


class MembersGroupQuerySet(models.QuerySet["MembersGroup"]):
    def for_club(self, club: Club) -> MembersGroupQuerySet:
        return self.filter(club=club)


class MembersGroup(ClubScopedModel):
    """A group of a club's members: manual, automatic (a rule) or system."""

    name = models.CharField(max_length=200, blank=True)
    type = models.CharField(max_length=100, blank=True, help_text="A free label, not an enum.")
    description = models.TextField(blank=True)
    automatic = models.BooleanField(default=False, editable=False)
    system = models.BooleanField(default=False, editable=False)
    # Which system group this is ("all_members"); null for every other group.
    system_key = models.CharField(max_length=32, null=True, blank=True, editable=False)
    audience = models.ForeignKey(
        Audience, on_delete=models.RESTRICT, related_name="groups", db_index=False
    )
    # Kept exact by groups.ledger in the same transaction as the rows; never counted on read.
    members_count = models.BigIntegerField(default=0, editable=False)
    # True while a background recomputation of the rule is pending or running.
    recomputing = models.BooleanField(default=False, editable=False)
    # Bumped by every scheduled recomputation, so that only the latest one clears the flag.
    recompute_version = models.PositiveIntegerField(default=0, editable=False)
    # When the latest background recomputation was enqueued: one still pending long after
    # is taken to be lost (a killed worker) and enqueued again by the scheduler's
    # resume-stalled-work job.
    recompute_requested_at = models.DateTimeField(null=True, editable=False)

    objects = MembersGroupQuerySet.as_manager()

    class Meta:
        ordering = ["id"]
        verbose_name = "members group"
        constraints = [
            models.UniqueConstraint(fields=["club", "id"], name="group_club_id_uniq"),
            models.UniqueConstraint(
                fields=["club", "system_key"],
                condition=models.Q(system_key__isnull=False),
                name="group_club_system_key_uniq",
            ),
        ]
        indexes = [
            models.Index(fields=["club", "name"], name="group_club_name_idx"),
            models.Index(fields=["club", "audience"], name="group_club_audience_idx"),
        ]

    def __str__(self) -> str:
        return self.name or f"group {self.pk}"

    @property
    def is_manual(self) -> bool:
        return not (self.automatic or self.system)


class Membership(models.Model):
    """One member in one group. The foreign keys are checked as same-club pairs by migration."""

    club = models.ForeignKey(Club, on_delete=models.CASCADE, db_index=False, db_constraint=False)
    group = models.ForeignKey(
        MembersGroup,
        on_delete=models.CASCADE,
        related_name="memberships",
        db_index=False,
        db_constraint=False,
    )
    member = models.ForeignKey(
        Member,
        on_delete=models.CASCADE,
        related_name="memberships",
        db_index=False,
        db_constraint=False,
    )
    joined_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["club", "group", "member"], name="membership_club_group_member_uniq"
            ),
        ]
        indexes = [models.Index(fields=["club", "member"], name="membership_club_member_idx")]

    def __str__(self) -> str:
        return f"member {self.member_id} in group {self.group_id}"


class MembershipEvent(models.Model):
    """A join or a leave. Plain ids, not foreign keys: history outlives members and groups."""

    club = models.ForeignKey(Club, on_delete=models.CASCADE, db_index=False)
    group_id = models.BigIntegerField()
    member_id = models.BigIntegerField()
    kind = models.CharField(max_length=6, choices=EventKind.choices)
    source = models.CharField(max_length=6, choices=Source.choices)
    actor = models.CharField(max_length=150, blank=True, help_text="Who: a user or API token.")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(
                fields=["club", "group_id", "created_at"], name="event_club_group_time_idx"
            ),
            models.Index(
                fields=["club", "member_id", "created_at"], name="event_club_member_time_idx"
            ),
        ]

    def __str__(self) -> str:
        return f"member {self.member_id} {self.kind} group {self.group_id}"


def new_webhook_secret() -> str:
    """A webhook endpoint's signing secret (``groups.webhooks.models``).

    Defined here because migration 0003 names it ``groups.models.new_webhook_secret``.
    """
    return secrets.token_urlsafe(32)
