"""The dependency graph of a club's automatic groups, its order, and cycle detection.

An automatic group depends on every group its audience names in a ``members_group_ids``
condition. Manual groups depend on nothing: their audience names only themselves.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from graphlib import CycleError, TopologicalSorter
from typing import Any

from audiences.conditions import ConditionError, parse_conditions, referenced_group_ids
from groups.models import MembersGroup
from loyalty.errors import InvalidParameters

Graph = dict[int, set[int]]


def graph_of(rules: Iterable[tuple[int, Any]]) -> Graph:
    """Map each automatic group, given with its conditions, to the groups they reference."""
    graph: Graph = {}
    for group_id, conditions in rules:
        try:
            graph[group_id] = referenced_group_ids(parse_conditions(conditions))
        except ConditionError:
            # A rule stored before a grammar change: it references nothing we can follow.
            graph[group_id] = set()
    return graph


def dependency_graph(club_id: int) -> Graph:
    """Map each automatic group of the club to the groups its conditions reference."""
    return graph_of(
        MembersGroup.objects.filter(club_id=club_id, automatic=True).values_list(
            "id", "audience__conditions"
        )
    )


def check_acyclic(
    graph: Mapping[int, Collection[int]], names: Mapping[int, str], field: str
) -> None:
    """Raise 422 naming the cycle, if the graph has one, under the payload's ``field``."""
    try:
        TopologicalSorter(graph).prepare()
    except CycleError as exc:
        cycle = list(reversed(exc.args[1]))
        path = " -> ".join(f"{names.get(g, g)} ({g})" for g in cycle)
        raise InvalidParameters.field(field, "cycle", members_group_ids=cycle, path=path) from exc


def dependants_in_order(
    graph: Mapping[int, Collection[int]], changed: Collection[int]
) -> list[int]:
    """The automatic groups that depend, directly or not, on ``changed``, dependencies first."""
    reverse: dict[int, set[int]] = {}
    for group_id, needs in graph.items():
        for need in needs:
            reverse.setdefault(need, set()).add(group_id)
    affected: set[int] = set()
    stack = list(changed)
    while stack:
        for dependant in reverse.get(stack.pop(), ()):
            if dependant not in affected:
                affected.add(dependant)
                stack.append(dependant)
    order = TopologicalSorter({g: set(graph.get(g, ())) & affected for g in affected})
    return list(order.static_order())


def users_of(graph: Mapping[int, Collection[int]], group_id: int) -> set[int]:
    """The groups whose own rule references ``group_id`` (not through other groups)."""
    return {g for g, needs in graph.items() if group_id in needs and g != group_id}


def levels(graph: Mapping[int, Collection[int]]) -> list[list[int]]:
    """The groups in batches: each batch depends only on groups of earlier batches."""
    sorter = TopologicalSorter({g: set(needs) & set(graph) for g, needs in graph.items()})
    sorter.prepare()
    batches = []
    while sorter.is_active():
        ready = sorted(sorter.get_ready())
        batches.append(ready)
        sorter.done(*ready)
    return batches
