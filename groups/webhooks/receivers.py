"""Reactions of webhooks to membership changes; each calls one function of ``sending``."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from django.dispatch import receiver

from groups.models import Membership
from groups.signals import memberships_changed
from groups.webhooks import sending


@receiver(memberships_changed, dispatch_uid="groups.webhooks.deliver_membership_events")
def deliver_membership_events(
    sender: type[Membership], *, club_id: int, kind: str, group_ids: list[int], **kwargs: Any
) -> Callable[[Sequence[tuple[int, int]]], None] | None:
    return sending.deliveries_for(club_id, kind, group_ids)
