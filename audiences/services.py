"""State changes of audiences."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from django.db import transaction
from django.db.models import Q

from audiences.conditions import (
    BRANCH_OPERATORS,
    ConditionError,
    Node,
    parse_conditions,
    referenced_group_ids,
)
from audiences.models import Audience
from audiences.signals import audience_conditions_changed, checking_conditions
from loyalty.errors import InvalidParameters, NotAllowed
from loyalty.models import Club


class AudienceInUse(NotAllowed):
    message = "The audience is used by a members group and cannot be destroyed."


class AudienceOwnedByGroup(NotAllowed):
    message = "The audience is the rule of a manual or system group and cannot be changed."


class AudienceOfSystemGroup(NotAllowed):
    message = "The audience of a system group is the system's and cannot be changed."


def of_system_group(audience: Audience) -> bool:
    return audience.groups.filter(system=True).exists()


def parse_or_refuse(conditions: Any, field: str = "conditions") -> Node:
    """Parse ``conditions`` with the engine, or refuse with 422 details under ``field``."""
    try:
        return parse_conditions(conditions)
    except ConditionError as exc:
        raise InvalidParameters(details={field: exc.details}) from exc


def check_group_references(club_id: int, node: Node, field: str) -> set[int]:
    """Return the group ids the rule names, or refuse with 422 if one is not of the club."""
    ids = referenced_group_ids(node)
    if not ids:
        return ids
    # The club's groups through their audiences' reverse relation (a group and its audience
    # are of one club): audiences sit below groups and never import them.
    unknown = ids - set(
        Audience.objects.filter(club_id=club_id, groups__pk__in=ids)
        .order_by()
        .values_list("groups__pk", flat=True)
    )
    if unknown:
        raise InvalidParameters.field(field, "unknown_members_group", ids=sorted(unknown))
    return ids


def check_conditions(
    club_id: int,
    conditions: Any,
    *,
    members_group_id: int | None = None,
    audience_id: int | None = None,
) -> Node:
    """Parse ``conditions`` and run the checks saving them runs, for a preview: the groups
    they name are the club's, and as the rule of the group ``members_group_id``, or of the
    automatic groups following the audience ``audience_id``, they make no cycle (checked by
    the receivers of ``checking_conditions``: only groups know the dependency graph).

    A refusal of group ids is 422 at each condition naming one (``{"<index>": {"value":
    ...}}``, nested as the grammar's errors are), so that the builder shows it at its row.
    """
    node = parse_or_refuse(conditions)
    try:
        check_group_references(club_id, node, "conditions")
        checking_conditions.send(
            sender=Audience,
            club_id=club_id,
            node=node,
            members_group_id=members_group_id,
            audience_id=audience_id,
        )
    except InvalidParameters as refusal:
        located = _at_conditions(refusal, conditions)
        if located is None:
            raise
        raise located from refusal
    return node


# The option of each group-reference refusal that names the group ids at fault.
FAULTY_IDS = {"unknown_members_group": "ids", "cycle": "members_group_ids"}


def _at_conditions(refusal: InvalidParameters, conditions: Any) -> InvalidParameters | None:
    """The refusal of group ids under ``conditions``, moved to each condition naming one of
    them; None if it is not such a refusal."""
    problems = (refusal.details or {}).get("conditions")
    if not isinstance(problems, list):
        return None
    details: dict[str, Any] = {}
    for problem in problems:
        option = FAULTY_IDS.get(problem["error"])
        if option is None:
            return None
        faulty = set(problem["options"][option])
        for path, ids in _group_conditions(conditions, ()):
            if not ids & faulty:
                continue
            options = problem["options"]
            if option == "ids":
                options = {**options, "ids": sorted(ids & faulty)}
            place = details
            for key in path:
                place = place.setdefault(key, {})
            place.setdefault("value", []).append({"error": problem["error"], "options": options})
    return InvalidParameters(details={"conditions": details}) if details else None


def _group_conditions(
    nodes: list[Any], path: tuple[str, ...]
) -> Iterator[tuple[tuple[str, ...], set[int]]]:
    """Each condition of parsed ``nodes`` (a list, as the grammar takes it) that names
    groups: its path of indexes and keys, and the ids it names (as the engine reads them)."""
    for index, item in enumerate(nodes):
        at = (*path, str(index))
        if item.get("operator") in BRANCH_OPERATORS:
            yield from _group_conditions(item["conditions"], (*at, "conditions"))
        elif ids := referenced_group_ids(parse_conditions([item])):
            yield at, ids


def validate_conditions(conditions: Any, club_id: int) -> list[Any]:
    """Return ``conditions`` if they make a rule of the club's, else raise 422 on ``conditions``."""
    check_group_references(club_id, parse_or_refuse(conditions), "conditions")
    return list(conditions)


@transaction.atomic
def create_audience(*, club: Club, name: str = "", conditions: Any = None) -> Audience:
    conditions = validate_conditions([] if conditions is None else conditions, club.pk)
    return Audience.objects.create(club=club, name=name, conditions=conditions)


@transaction.atomic
def update_audience(*, audience: Audience, **fields: Any) -> Audience:
    """Rename an audience or change its rule; the groups that follow it are re-computed."""
    audience = Audience.objects.select_for_update().get(pk=audience.pk, club_id=audience.club_id)
    changed = "conditions" in fields and fields["conditions"] != audience.conditions
    renamed = "name" in fields and fields["name"] != audience.name
    if (changed or renamed) and of_system_group(audience):
        raise AudienceOfSystemGroup()
    if changed:
        if audience.groups.filter(Q(automatic=False) | Q(system=True)).exists():
            raise AudienceOwnedByGroup()
        audience.conditions = validate_conditions(fields["conditions"], audience.club_id)
    if "name" in fields:
        audience.name = fields["name"]
    audience.save()
    if changed:
        audience_conditions_changed.send(sender=Audience, audience=audience)
    return audience


@transaction.atomic
def delete_audience(*, audience: Audience) -> None:
    if audience.groups.exists():
        raise AudienceInUse()
    audience.delete()


# The audiences a group makes for itself (``made_for_group``): a manual group's rule, the
# rule sent with an automatic group, "All members"'s empty rule. The groups service
# validates their conditions and recomputes the group itself: nothing is announced.


def create_group_audience(*, club: Club, name: str, conditions: list[Any]) -> Audience:
    """Create the audience a group is made with."""
    return Audience.objects.create(club=club, name=name, conditions=conditions, made_for_group=True)


def set_group_audience_conditions(*, audience: Audience, conditions: list[Any]) -> None:
    """Change the rule of an audience made for the one group that follows it."""
    audience.conditions = conditions
    audience.save(update_fields=["conditions", "updated_at"])


def delete_group_audience_if_unused(*, audience: Audience) -> None:
    """Delete an audience made for a group once no group follows it; keep a client's."""
    if audience.made_for_group and not audience.groups.exists():
        audience.delete()
