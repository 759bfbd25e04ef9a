"""The Member model: one person in one loyalty club."""

from __future__ import annotations

from django.db import models
from django.db.models.functions import Lower

from loyalty.models import ClubScopedModel


class ChannelStatus(models.TextChoices):
    ENABLED = "enabled"
    DISABLED = "disabled"
    HARD_BOUNCED = "hard_bounced"
    SOFT_BOUNCED = "soft_bounced"
    UNSUBSCRIBED = "unsubscribed"


class MemberQuerySet(models.QuerySet["Member"]):
    def for_club(self, club: object) -> MemberQuerySet:
        return self.filter(club=club)


class Member(ClubScopedModel):
    """A club member, identified by id, email or msisdn (at least one of the last two)."""

    email = models.CharField(max_length=254, null=True, blank=True)
    msisdn = models.CharField(max_length=15, null=True, blank=True)
    properties = models.JSONField(default=dict, blank=True)
    consents = models.JSONField(default=dict, blank=True)
    sms_status = models.CharField(
        max_length=20, choices=ChannelStatus.choices, default=ChannelStatus.DISABLED
    )
    email_status = models.CharField(
        max_length=20, choices=ChannelStatus.choices, default=ChannelStatus.DISABLED
    )
    push_status = models.CharField(
        max_length=20, choices=ChannelStatus.choices, default=ChannelStatus.DISABLED
    )
    # JSON arrays rather than PostgreSQL arrays so the same schema runs on SQLite.
    subunit_ids = models.JSONField(default=list, blank=True)
    favorite_stores = models.JSONField(default=list, blank=True)

    objects = MemberQuerySet.as_manager()

    class Meta:
        ordering = ["id"]
        constraints = [
            # The target of same-club foreign keys from club-scoped tables.
            models.UniqueConstraint(fields=["club", "id"], name="member_club_id_uniq"),
            models.UniqueConstraint(
                fields=["club", "email"],
                condition=models.Q(email__isnull=False),
                name="member_club_email_uniq",
            ),
            models.UniqueConstraint(
                fields=["club", "msisdn"],
                condition=models.Q(msisdn__isnull=False),
                name="member_club_msisdn_uniq",
            ),
            models.CheckConstraint(
                condition=models.Q(email__isnull=False) | models.Q(msisdn__isnull=False),
                name="member_email_or_msisdn",
            ),
            models.CheckConstraint(
                condition=models.Q(email=Lower("email")), name="member_email_lower_case"
            ),
        ]

    def __str__(self) -> str:
        return self.email or self.msisdn or f"member {self.pk}"
