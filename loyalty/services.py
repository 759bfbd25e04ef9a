"""State changes of clubs and API tokens."""

from __future__ import annotations

from collections.abc import Iterable

from django.db import transaction
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
