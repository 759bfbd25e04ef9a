"""Reactions of groups to member and club events; each calls one service of this app."""

from __future__ import annotations

from typing import Any

from django.dispatch import receiver

from groups import services
from loyalty.models import Club
from loyalty.signals import club_created
from members.models import Member
from members.signals import member_deleting, member_saved, members_created


@receiver(club_created, dispatch_uid="groups.create_system_groups")
def create_system_groups(sender: type[Club], *, club: Club, **kwargs: Any) -> None:
    services.create_system_groups(club=club)


@receiver(member_saved, dispatch_uid="groups.join_system_groups_on_save")
def join_system_groups_on_save(
    sender: type[Member], *, member: Member, created: bool, source: str, actor: str, **kwargs: Any
) -> None:
    if created:
        services.join_system_groups(
            club=member.club, member_ids=[member.pk], source=source, actor=actor
        )


@receiver(members_created, dispatch_uid="groups.join_system_groups_on_bulk_create")
def join_system_groups_on_bulk_create(
    sender: type[Member],
    *,
    club: Club,
    member_ids: list[int],
    source: str,
    actor: str,
    **kwargs: Any,
) -> None:
    services.join_system_groups(club=club, member_ids=member_ids, source=source, actor=actor)


@receiver(member_deleting, dispatch_uid="groups.leave_all_groups")
def leave_all_groups(
    sender: type[Member], *, member: Member, source: str, actor: str, **kwargs: Any
) -> None:
    services.leave_all_groups(member=member, source=source, actor=actor)
