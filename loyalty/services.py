"""State changes of clubs and API tokens."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import timedelta

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from loyalty.errors import InvalidParameters
from loyalty.models import ApiToken, Club, hash_token
from loyalty.permits import ALL_PERMITS
from loyalty.signals import club_created


@transaction.atomic
def create_club(*, slug: str, name: str, timezone_name: str = "UTC") -> Club:
    """Create a club; receivers give it its system groups in the same transaction."""
    club = Club(slug=slug, name=name, timezone=timezone_name)
    club.full_clean()
    club.save()
    club_created.send(sender=Club, club=club)
    return club


def create_api_token(*, club: Club, name: str, permits: Iterable[str]) -> tuple[ApiToken, str]:
    """Create a token and return it with its raw value, which is never stored or shown again."""
    permits = list(dict.fromkeys(permits))
    unknown = sorted(set(permits) - set(ALL_PERMITS))
    if unknown:
        raise InvalidParameters.field("permits", "unknown", permits=unknown)
    raw = ApiToken.generate_raw()
    token = ApiToken.objects.create(
        club=club, name=name, permits=permits, key_hash=hash_token(raw), prefix=raw[:12]
    )
    return token, raw


def revoke_api_token(*, token: ApiToken) -> None:
    ApiToken.objects.filter(pk=token.pk, revoked_at__isnull=True).update(revoked_at=timezone.now())


# How often a token's last_used_at is written: often enough to audit, rarely enough to
# keep writes off the hot path of every request.
LAST_USED_RESOLUTION = timedelta(minutes=1)


def touch_api_token(*, token: ApiToken) -> None:
    """Record that the token was used, at most once per ``LAST_USED_RESOLUTION``."""
    now = timezone.now()
    if token.last_used_at is not None and now - token.last_used_at < LAST_USED_RESOLUTION:
        return
    # The condition repeats the check in SQL so that concurrent requests write once.
    ApiToken.objects.filter(
        Q(last_used_at__isnull=True) | Q(last_used_at__lt=now - LAST_USED_RESOLUTION),
        pk=token.pk,
    ).update(last_used_at=now)
    token.last_used_at = now
