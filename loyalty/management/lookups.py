"""What commands look up before they work, refused with one wording: a club by its slug."""

from __future__ import annotations

from django.core.management.base import CommandError

from loyalty.models import Club


def club_by_slug(slug: str) -> Club:
    club = Club.objects.filter(slug=slug).first()
    if club is None:
        raise CommandError(f"No club with the slug {slug!r}.")
    return club
