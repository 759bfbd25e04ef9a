"""The tenant (Club), API tokens, and the abstract bases every club-owned table uses."""

from __future__ import annotations

import hashlib
import secrets
import zoneinfo

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models

from loyalty.db_decoding import JSONField
from loyalty.permits import ALL_PERMITS

TOKEN_PREFIX = "mgs_"


def validate_timezone(value: str) -> None:
    if value not in zoneinfo.available_timezones():
        raise ValidationError(f"Unknown time zone {value!r}.")


class TimeStampedModel(models.Model):
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        abstract = True


class Club(TimeStampedModel):
    """A loyalty club: the tenant every other row belongs to."""

    slug = models.SlugField(max_length=64, unique=True)
    name = models.CharField(max_length=200)
    timezone = models.CharField(max_length=64, default="UTC", validators=[validate_timezone])
    managers = models.ManyToManyField(
        settings.AUTH_USER_MODEL,
        blank=True,
        related_name="managed_clubs",
        help_text="Staff users (not superusers) who may see and change this club in the admin.",
    )

    class Meta:
        ordering = ["slug"]

    def __str__(self) -> str:
        return self.name or self.slug


class ClubScopedModel(TimeStampedModel):
    """A row owned by one club; the club leads every key so the table can be sharded by it."""

    club = models.ForeignKey(Club, on_delete=models.CASCADE, db_index=False)

    class Meta:
        abstract = True


def hash_token(raw: str) -> str:
    # Tokens are 256-bit random strings, so a plain SHA-256 is enough (no slow KDF needed).
    return hashlib.sha256(raw.encode()).hexdigest()


class ApiToken(ClubScopedModel):
    """A club's API credential: named permits, stored as a hash, revocable."""

    name = models.CharField(max_length=100)
    prefix = models.CharField(max_length=16, editable=False)
    key_hash = models.CharField(max_length=64, editable=False)
    permits = JSONField(default=list)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["club", "key_hash"], name="apitoken_club_key_hash_uniq"
            ),
        ]
        indexes = [models.Index(fields=["club", "name"], name="apitoken_club_name_idx")]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @staticmethod
    def generate_raw() -> str:
        return TOKEN_PREFIX + secrets.token_urlsafe(32)

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None

    def clean(self) -> None:
        unknown = sorted(set(self.permits or []) - set(ALL_PERMITS))
        if unknown:
            raise ValidationError({"permits": f"Unknown permits: {', '.join(unknown)}."})
