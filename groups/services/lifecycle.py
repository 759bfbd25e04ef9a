"""Groups made, changed and destroyed: manual, automatic and the system's "All members"."""

from __future__ import annotations

from typing import Any

from django.db import transaction

from audiences import services as audience_services
from audiences.models import Audience
from audiences.services import check_group_references, parse_or_refuse
from groups import ledger
from groups.dependencies import dependency_graph, users_of
from groups.models import ALL_MEMBERS_KEY, MembersGroup
from groups.services.errors import GroupInUse, refuse_system
from groups.services.locking import lock_group, lock_rules
from groups.services.rules import check_graph, recompute_or_schedule
from loyalty.errors import InvalidParameters
from loyalty.models import Club


def membership_rule(group_id: int) -> list[dict[str, Any]]:
    """The audience conditions of a manual group: its own members (SPEC section 1)."""
    return [
        {
            "condition_group": "member_properties",
            "type": "array",
            "field": "members_group_ids",
            "operator": "any",
            "value": [group_id],
        }
    ]


def _audience_for(
    club: Club, name: str, audience_id: int | None, audience_conditions: Any
) -> tuple[Audience, set[int]]:
    """The audience an automatic group follows, and the groups its rule references.

    Given both, the conditions must be that audience's (a group read and sent back whole,
    or the platform's payload example); the group then follows the audience. Given
    conditions only, the audience is not saved yet (no pk): the caller creates it through
    the audiences service once the rule is accepted.
    """
    followed = (
        None if audience_id is None else Audience.objects.filter(club=club, pk=audience_id).first()
    )
    if followed is not None and audience_conditions is not None:
        if followed.conditions != audience_conditions:
            raise InvalidParameters.field(
                "audience_conditions", "not_the_audiences", audience_id=audience_id
            )
        audience_conditions = None
    if audience_conditions is not None and audience_id is None:
        node = parse_or_refuse(audience_conditions, "audience_conditions")
        references = check_group_references(club.pk, node, "audience_conditions")
        audience = Audience(
            club=club, name=name, conditions=audience_conditions, made_for_group=True
        )
        return audience, references
    if followed is None:
        raise InvalidParameters.field("audience_id", "not_found")
    node = parse_or_refuse(followed.conditions, "audience_id")
    return followed, check_group_references(club.pk, node, "audience_id")


@transaction.atomic
def create_group(
    *,
    club: Club,
    name: str = "",
    type: str = "",
    description: str = "",
    audience_id: int | None = None,
    audience_conditions: Any = None,
    actor: str = "",
) -> MembersGroup:
    """Create a group: manual, or automatic when given an audience or conditions.

    A manual group gets its own audience (``members_group_ids any [own id]``); an automatic
    group's members are computed at once from its rule.
    """
    fields = {"club": club, "name": name, "type": type, "description": description}
    if audience_id is None and audience_conditions is None:
        audience = audience_services.create_group_audience(club=club, name=name, conditions=[])
        group = MembersGroup.objects.create(**fields, audience=audience)
        audience_services.set_group_audience_conditions(
            audience=audience, conditions=membership_rule(group.pk)
        )
        return group
    audience, _references = _audience_for(club, name, audience_id, audience_conditions)
    lock_rules(club.pk, exclusive=True)
    if audience.pk is None:
        audience = _create(audience)
    group = MembersGroup.objects.create(**fields, audience=audience, automatic=True)
    recompute_or_schedule(lock_group(group), actor)
    group.refresh_from_db()
    return group


@transaction.atomic
def update_group(*, group: MembersGroup, actor: str = "", **fields: Any) -> MembersGroup:
    """Change a group's name, type or description, or an automatic group's rule.

    A new rule is applied as a diff, then the groups that depend on this one follow.
    """
    if "audience_id" in fields or "audience_conditions" in fields:
        lock_rules(group.club_id, exclusive=True)
    group = lock_group(group)
    refuse_system(group)
    rule_fields: dict[str, Any] = {
        k: fields[k] for k in ("audience_id", "audience_conditions") if k in fields
    }
    if rule_fields and group.is_manual:
        # Its own audience and rule echoed back (a group read and sent back whole) change
        # nothing; only a change is refused.
        own = {"audience_id": group.audience_id, "audience_conditions": group.audience.conditions}
        changed = [k for k, value in rule_fields.items() if value != own[k]]
        if changed:
            raise InvalidParameters(
                details={
                    k: [{"error": "not_allowed_for_manual_group", "options": {}}] for k in changed
                }
            )
        rule_fields = {}
    for field in ("name", "type", "description"):
        if field in fields:
            setattr(group, field, fields[field])
    followed = group.audience
    new_rule = _set_rule(group, rule_fields) if rule_fields else False
    # Its own fields only: the count and the recomputation state are the ledger's and the
    # rules' to write.
    group.save(update_fields=["name", "type", "description", "audience", "updated_at"])
    if group.audience_id != followed.pk:
        audience_services.delete_group_audience_if_unused(audience=followed)
    if new_rule:
        recompute_or_schedule(group, actor)
    return group


def _create(audience: Audience) -> Audience:
    """Create the audience ``_audience_for`` described (not saved yet)."""
    return audience_services.create_group_audience(
        club=audience.club, name=audience.name, conditions=audience.conditions
    )


def _set_rule(group: MembersGroup, rule_fields: dict[str, Any]) -> bool:
    """Point the group at its new audience; return whether the rule changed."""
    audience, references = _audience_for(
        group.club,
        group.name,
        rule_fields.get("audience_id"),
        rule_fields.get("audience_conditions"),
    )
    if audience.pk == group.audience_id or (
        audience.pk is None and audience.conditions == group.audience.conditions
    ):
        return False
    # The field the new rule came from, as _audience_for chose it: the audience when given.
    field = "audience_conditions" if audience.pk is None else "audience_id"
    check_graph(group, references, field)
    if audience.pk is None:
        own = group.audience
        if own.made_for_group and not own.groups.exclude(pk=group.pk).exists():
            # The audience made for this group alone: change it in place.
            audience_services.set_group_audience_conditions(
                audience=own, conditions=audience.conditions
            )
            return True
        audience = _create(audience)
    group.audience = audience
    return True


@transaction.atomic
def delete_group(*, group: MembersGroup, source: str, actor: str = "") -> None:
    """Destroy a group, recording a leave for each member; the audience made for it goes
    with it, an audience a client created stays."""
    group = lock_group(group)
    refuse_system(group)
    users = sorted(users_of(dependency_graph(group.club_id), group.pk))
    if users:
        names = ", ".join(
            f"{name} ({pk})"
            for pk, name in MembersGroup.objects.filter(pk__in=users).values_list("pk", "name")
        )
        raise GroupInUse(f"The group is used by the conditions of: {names}.")
    ledger.empty_group(group, source=source, actor=actor)
    audience = group.audience
    group.delete()
    audience_services.delete_group_audience_if_unused(audience=audience)


@transaction.atomic
def create_system_groups(*, club: Club) -> None:
    """Give a new club its "All members" group: an automatic group whose rule is empty."""
    audience = audience_services.create_group_audience(club=club, name="All members", conditions=[])
    MembersGroup.objects.create(
        club=club,
        name="All members",
        type="system",
        description="Every member of the club; maintained by the system.",
        automatic=True,
        system=True,
        system_key=ALL_MEMBERS_KEY,
        audience=audience,
    )
