"""What the group commands look up before they read or write, refused with one wording."""

from __future__ import annotations

from django.core.management.base import CommandError

from groups.models import MembersGroup
from loyalty.models import Club


def group_of_club(club: Club, group_id: int) -> MembersGroup:
    """The club's group ``group_id``."""
    group = MembersGroup.objects.filter(club=club, pk=group_id).first()
    if group is None:
        raise CommandError(f"No group {group_id} in the club {club.slug}.")
    return group


def manual_group(club: Club, group_id: int) -> MembersGroup:
    """The club's group ``group_id``, refused unless it is manual (members by hand)."""
    group = group_of_club(club, group_id)
    if not group.is_manual:
        kind = "a system" if group.system else "an automatic"
        raise CommandError(
            f'Group {group_id} ("{group.name}") is {kind} group: only manual groups take '
            "members by hand."
        )
    return group
