"""Compile parsed conditions into one club-scoped SQL condition over members."""

from __future__ import annotations

from datetime import date, datetime
from functools import reduce
from operator import and_, or_
from zoneinfo import ZoneInfo

from django.db.models import BooleanField, Case, Exists, Q, Value, When

from audiences.conditions.grammar import And, Leaf, Node, Not, Or
from audiences.conditions.operators import NEGATIONS, OPERATORS, Condition, Context


def _two_valued(condition: Condition) -> Condition:
    """Turn SQL's NULL (unknown) into false, so that negation is exact."""
    if isinstance(condition, Exists):
        return condition
    return Case(
        When(condition, then=Value(True)), default=Value(False), output_field=BooleanField()
    )


def _compile(node: Node, ctx: Context) -> Condition:
    match node:
        case Leaf(type=type_, operator=operator):
            positive = NEGATIONS.get(operator, operator)
            condition = OPERATORS[type_][positive](node, ctx)
            return ~_two_valued(condition) if positive != operator else condition
        case And(children=children):
            return reduce(and_, (Q(_compile(child, ctx)) for child in children), Q())
        case Or(children=children):
            return reduce(or_, (Q(_compile(child, ctx)) for child in children))
        case Not(child=child):
            return ~_two_valued(_compile(child, ctx))
    raise TypeError(node)


def compile_conditions(
    node: Node, *, club_id: int, tz: str = "UTC", today: date | None = None
) -> Q:
    """Return a ``Q`` selecting the club's members that satisfy ``node``.

    ``today`` defaults to the current date in the club's time zone ``tz``; relative date
    operators (``within_last_days`` ...) count from it.
    """
    zone = ZoneInfo(tz)
    ctx = Context(club_id=club_id, today=today or datetime.now(zone).date(), tz=zone)
    return Q(club_id=club_id) & Q(_compile(node, ctx))


def referenced_group_ids(node: Node) -> set[int]:
    """The group ids that ``members_group_ids`` conditions name: the node's dependencies."""
    match node:
        case Leaf(field="members_group_ids", condition_group="member_properties", value=value):
            return set(value or ())
        case Leaf():
            return set()
        case And(children=children) | Or(children=children):
            return set().union(*(referenced_group_ids(child) for child in children))
        case Not(child=child):
            return referenced_group_ids(child)
    raise TypeError(node)


RELATIVE_OPERATORS = ("within_last_days", "more_than_days_ago", "anniversary_within_days")


def uses_relative_dates(node: Node) -> bool:
    """Whether the node's answer changes with the date alone (so it needs a daily refresh)."""
    match node:
        case Leaf(operator=operator):
            return operator in RELATIVE_OPERATORS
        case And(children=children) | Or(children=children):
            return any(uses_relative_dates(child) for child in children)
        case Not(child=child):
            return uses_relative_dates(child)
    raise TypeError(node)
