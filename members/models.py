"""Members of a loyalty club, and the member imports sent through the API."""

from __future__ import annotations

from collections.abc import Collection, Iterable
from typing import Any, Self

from django.db import models
from django.db.models import QuerySet
from django.db.models.functions import Lower

from loyalty.db_decoding import JSONField
from loyalty.models import Club, ClubScopedModel

# The identifiers a club's members may not share.
STORED_IDENTIFIERS = ("email", "msisdn")


class ChannelStatus(models.TextChoices):
    ENABLED = "enabled"
    DISABLED = "disabled"
    HARD_BOUNCED = "hard_bounced"
    SOFT_BOUNCED = "soft_bounced"
    UNSUBSCRIBED = "unsubscribed"


class MemberQuerySet(models.QuerySet["Member"]):
    def for_club(self, club: Club | int) -> MemberQuerySet:
        return self.filter(club=club)


class Member(ClubScopedModel):
    """A club member, identified by id, email or msisdn (at least one of the last two)."""

    email = models.CharField(max_length=254, null=True, blank=True)
    msisdn = models.CharField(max_length=15, null=True, blank=True)
    properties = JSONField(default=dict, blank=True)
    consents = JSONField(default=dict, blank=True)
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
    subunit_ids = JSONField(default=list, blank=True)
    favorite_stores = JSONField(default=list, blank=True)
    # The fingerprint of the import file row that last wrote the member, cleared by every
    # other write: a re-import skips, unparsed, a row whose fingerprint its member holds.
    import_fingerprint = models.CharField(max_length=32, null=True, blank=True, editable=False)

    objects = MemberQuerySet.as_manager()

    # Set on the rows of a page of the admin's members list (members.admin.MemberChangeList).
    page_groups: list[tuple[int, str]]
    # The identifiers as read from the database (``from_db``; None when not read): a change
    # looks for a clash with another member only on those that differ (members.services).
    stored_identifiers: dict[str, str | None]

    @classmethod
    def from_db(
        cls, db: str | None, field_names: Collection[str], values: Collection[Any], **kwargs: Any
    ) -> Self:
        member = super().from_db(db, field_names, values, **kwargs)
        member.stored_identifiers = {
            field: member.__dict__.get(field) for field in STORED_IDENTIFIERS
        }
        return member

    def refresh_from_db(
        self,
        using: str | None = None,
        fields: Iterable[str] | None = None,
        from_queryset: QuerySet[Self] | None = None,
    ) -> None:
        fields = None if fields is None else list(fields)
        super().refresh_from_db(using, fields, from_queryset)
        stored = getattr(self, "stored_identifiers", {})
        self.stored_identifiers = stored | {
            field: self.__dict__.get(field)
            for field in STORED_IDENTIFIERS
            if fields is None or field in fields
        }

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
        indexes = [
            # Pages of a large group sorted by these fields walk them in order, probing each
            # member for membership (groups.selectors.sorted_members); email and msisdn
            # walk their unique constraints.
            models.Index(fields=["club", "created_at", "id"], name="member_club_created_idx"),
            models.Index(fields=["club", "updated_at", "id"], name="member_club_updated_idx"),
            # Whether any of a club's members came from a file (imports look the rest up by
            # email, msisdn or id): one key per club, so each new entry goes at the end.
            models.Index(
                fields=["club"],
                condition=models.Q(import_fingerprint__isnull=False),
                name="member_club_imported_idx",
            ),
        ]

    def __str__(self) -> str:
        return self.email or self.msisdn or f"member {self.pk}"


class ImportStatus(models.TextChoices):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


class ImportOperation(models.TextChoices):
    CREATE = "create"
    UPDATE = "update"


class MemberIdentifierType(models.TextChoices):
    ID = "id"
    EMAIL = "email"
    MSISDN = "msisdn"


class MultiValuesUpdateMode(models.TextChoices):
    REPLACE = "replace"
    APPEND = "append"


class MemberImport(ClubScopedModel):
    """An import of members sent through the API, run in the background, and its report."""

    import_id = models.CharField(max_length=100, help_text="The client's id of the import.")
    request_number = models.PositiveIntegerField(null=True, blank=True)
    operation = models.CharField(max_length=10, choices=ImportOperation.choices)
    member_identifier_type = models.CharField(max_length=10, choices=MemberIdentifierType.choices)
    multi_values_update_mode = models.CharField(
        max_length=10, choices=MultiValuesUpdateMode.choices
    )
    status = models.CharField(
        max_length=10, choices=ImportStatus.choices, default=ImportStatus.QUEUED
    )
    created = models.PositiveIntegerField(default=0)
    updated = models.PositiveIntegerField(default=0)
    unchanged = models.PositiveIntegerField(default=0)
    rejected = models.PositiveIntegerField(default=0)
    rejected_rows = JSONField(default=list, blank=True)
    # The members sent, kept only until the import has run; a row jsonb cannot hold (a lone
    # surrogate, a number too large for a float) as its JSON text, for the run to reject.
    payload = JSONField(default=list, blank=True)
    # [member id, index] of each row imported so far, committed with its batch: a resumed
    # run knows them, so a later row naming one of these members is still a duplicate.
    members_taken = JSONField(default=list, blank=True, editable=False)
    # Who sent it: the actor of the membership events the import causes.
    actor = models.CharField(max_length=200, blank=True)
    error = models.TextField(blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(
                fields=["club", "import_id"], name="memberimport_club_import_id_uniq"
            ),
        ]

    def __str__(self) -> str:
        return self.import_id

    @property
    def rows_run(self) -> int:
        """How many of the members sent have run: each counts once, in one of the counts."""
        return self.created + self.updated + self.unchanged + self.rejected
