"""The Audience model: a named rule over a club's members (SPEC section 4)."""

from __future__ import annotations

from django.db import models

from loyalty.db_decoding import JSONField
from loyalty.models import ClubScopedModel


class Audience(ClubScopedModel):
    name = models.CharField(max_length=200, blank=True)
    conditions = JSONField(default=list, blank=True)
    # Made by the service for one group (a manual group's own rule, the rule an automatic
    # group was given as conditions, "All members"): it goes when no group uses it any
    # more. An audience a client created is never removed by what happens to groups.
    made_for_group = models.BooleanField(default=False, editable=False)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(fields=["club", "id"], name="audience_club_id_uniq"),
        ]

    def __str__(self) -> str:
        return self.name or f"audience {self.pk}"
