"""A group's rule as staff and clients read it: why a member matches, what the rule reads,
the rule in words, and the groups a rule may name."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, cast

from django.db.models import BooleanField, Case, Q, Value, When

from audiences.conditions import (
    ConditionError,
    Node,
    compile_conditions,
    parse_conditions,
    referenced_group_ids,
)
from audiences.describe import describe_conditions
from groups.dependencies import dependants_in_order, dependency_graph, users_of
from groups.models import MembersGroup, Membership
from members.models import Member


def explain_membership(*, group: MembersGroup, member: Member) -> dict[str, Any]:
    """Why a member is or is not in a group: every condition node, each with ``matches``.

    The conditions come back as stored, each node with a ``matches`` flag evaluated for
    this member in SQL (one query for the whole tree), beside ``is_member`` (the rows) and
    ``matches`` (the whole rule), which differ only while a recomputation is pending.
    """
    conditions = group.audience.conditions
    compiled: dict[str, Any] = {}

    def walk(items: list[Any], path: str) -> None:
        for index, item in enumerate(items):
            key = f"{path}_{index}"
            compiled[key] = _node_rule(group, [item])
            if isinstance(item, dict) and item.get("operator") in ("and", "or", "not"):
                walk(item["conditions"], key)

    walk(conditions, "n")
    compiled["rule"] = _node_rule(group, conditions)
    row = Member.objects.filter(pk=member.pk).values(
        **{
            key: Case(When(q, then=Value(True)), default=Value(False), output_field=BooleanField())
            for key, q in compiled.items()
        }
    )[0]
    # A boolean per key: keys passed as **kwargs are beyond what django-stubs can type.
    flags = cast("dict[str, bool]", row)

    def annotate(items: list[Any], path: str) -> list[dict[str, Any]]:
        annotated = []
        for index, item in enumerate(items):
            key = f"{path}_{index}"
            node = {**item, "matches": flags[key]}
            if item.get("operator") in ("and", "or", "not"):
                node["conditions"] = annotate(item["conditions"], key)
            annotated.append(node)
        return annotated

    return {
        "members_group_id": group.pk,
        "member_id": member.pk,
        "is_member": Membership.objects.filter(
            club_id=group.club_id, group_id=group.pk, member_id=member.pk
        ).exists(),
        "matches": flags["rule"],
        "conditions": annotate(conditions, "n"),
    }


def _node_rule(group: MembersGroup, conditions: list[Any]) -> Q:
    node = parse_conditions(conditions)
    return compile_conditions(node, club_id=group.club_id, tz=group.club.timezone)


def group_rule(group: MembersGroup) -> Node | None:
    """The group's parsed rule; None for a rule stored before a grammar change."""
    try:
        return parse_conditions(group.audience.conditions)
    except ConditionError:
        return None


def group_names(club_id: int, group_ids: Iterable[int]) -> dict[int, str]:
    """The names of the club's groups among ``group_ids``, by id (one query)."""
    return dict(
        MembersGroup.objects.filter(club_id=club_id, pk__in=group_ids).values_list("pk", "name")
    )


def rule_words(club_id: int, node: Node) -> str:
    """The rule in plain words, naming the groups it reads (one query for the names)."""
    return describe_conditions(node, group_names(club_id, referenced_group_ids(node)))


def rule_group_choices(
    club_id: int, *, group_id: int | None = None, audience_id: int | None = None
) -> list[tuple[int, str]]:
    """The club's groups, by name, that the rule of a group or of an audience may name.

    Left out: the group itself, or the automatic groups following the audience, and every
    group depending on those, directly or not: naming one of them would make a cycle.
    """
    groups = list(
        MembersGroup.objects.filter(club_id=club_id)
        .order_by("name", "pk")
        .values_list("pk", "name", "automatic", "audience_id")
    )
    roots = {
        pk
        for pk, _name, automatic, audience in groups
        if pk == group_id or (automatic and audience is not None and audience == audience_id)
    }
    excluded = (
        roots | set(dependants_in_order(dependency_graph(club_id), roots)) if roots else roots
    )
    return [(pk, name) for pk, name, _automatic, _audience in groups if pk not in excluded]


def groups_by_name(club_id: int, group_ids: Iterable[int]) -> list[MembersGroup]:
    """The club's groups among ``group_ids``, by name (one query)."""
    return list(MembersGroup.objects.filter(club_id=club_id, pk__in=group_ids).order_by("name"))


def dependants_of(group: MembersGroup) -> set[int]:
    """The automatic groups whose rules read ``group``: they follow its changes."""
    return users_of(dependency_graph(group.club_id), group.pk)
