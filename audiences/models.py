"""The Audience model: a named rule over a club's members (SPEC section 4)."""

from __future__ import annotations

from django.db import models

from loyalty.models import ClubScopedModel


class Audience(ClubScopedModel):
    name = models.CharField(max_length=200, blank=True)
    conditions = models.JSONField(default=list, blank=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(fields=["club", "id"], name="audience_club_id_uniq"),
        ]

    def __str__(self) -> str:
        return self.name or f"audience {self.pk}"
