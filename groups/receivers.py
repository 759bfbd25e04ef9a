"""Reactions of groups to club, member and audience events; each calls one service."""

from __future__ import annotations

from typing import Any

from django.dispatch import receiver

from audiences.conditions import Node
from audiences.models import Audience
from audiences.signals import audience_conditions_changed, checking_conditions
from groups import services
from loyalty.models import Club
from loyalty.signals import club_created
from members.models import Member
from members.signals import member_deleting, member_saved, members_created, members_updated


@receiver(club_created, dispatch_uid="groups.create_system_groups")
def create_system_groups(sender: type[Club], *, club: Club, **kwargs: Any) -> None:
    services.create_system_groups(club=club)


@receiver(member_saved, dispatch_uid="groups.refresh_memberships_for_member")
def refresh_memberships_for_member(
    sender: type[Member], *, member: Member, actor: str, **kwargs: Any
) -> None:
    services.refresh_memberships_for_member(member=member, actor=actor)


@receiver(members_created, dispatch_uid="groups.place_new_members")
def place_new_members(
    sender: type[Member], *, club: Club, member_ids: list[int], actor: str, **kwargs: Any
) -> None:
    services.place_new_members(club=club, member_ids=member_ids, actor=actor)


@receiver(members_updated, dispatch_uid="groups.refresh_memberships_for_updated_members")
def refresh_memberships_for_members(
    sender: type[Member], *, club: Club, member_ids: list[int], actor: str, **kwargs: Any
) -> None:
    services.refresh_memberships_for_members(club=club, member_ids=member_ids, actor=actor)


@receiver(member_deleting, dispatch_uid="groups.leave_all_groups")
def leave_all_groups(
    sender: type[Member], *, member: Member, source: str, actor: str, **kwargs: Any
) -> None:
    services.leave_all_groups(member=member, source=source, actor=actor)


@receiver(audience_conditions_changed, dispatch_uid="groups.recompute_audience_followers")
def recompute_audience_followers(
    sender: type[Audience], *, audience: Audience, **kwargs: Any
) -> None:
    services.recompute_audience_followers(audience=audience)


@receiver(checking_conditions, dispatch_uid="groups.check_rule_graph")
def check_rule_graph(
    sender: type[Audience],
    *,
    club_id: int,
    node: Node,
    members_group_id: int | None,
    audience_id: int | None,
    **kwargs: Any,
) -> None:
    services.check_rule_graph(
        club_id=club_id, node=node, group_id=members_group_id, audience_id=audience_id
    )
