"""Say parsed audience conditions in plain English, for staff reading a group's rule."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from audiences.conditions import And, Leaf, Node, Not, Or

# Built-in fields whose column name does not read well on its own.
FIELD_LABELS = {
    "id": "member id",
    "msisdn": "MSISDN",
    "sms_status": "SMS status",
    "created_at": "creation date",
    "updated_at": "last update date",
    "subunit_ids": "subunits",
    "favorite_stores": "favourite stores",
}


def quote(value: Any) -> str:
    """A value as written in the rule: strings in single quotes, numbers as they are."""
    if isinstance(value, str):
        return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
    return str(value)


def _listing(values: Sequence[Any], render: Callable[[Any], str] = quote) -> str:
    return ", ".join(render(value) for value in values)


def field_label(field: str) -> str:
    """A field's name as staff read it (``first_name`` is "first name")."""
    return FIELD_LABELS.get(field, field.replace("_", " "))


def _group_phrase(operator: str, ids: Sequence[int], names: Mapping[int, str]) -> str:
    def name(group_id: int) -> str:
        # A group deleted since the rule was written is named by its id.
        return quote(names[group_id]) if group_id in names else f"#{group_id} (no such group)"

    if operator == "empty":
        return "member of no group"
    if operator == "not_empty":
        return "member of some group"
    if len(ids) == 1:
        prefix = "not member of group" if operator == "none" else "member of group"
        return f"{prefix} {name(ids[0])}"
    # "any", "all" or "none" reads as English as it is.
    return f"member of {operator} of groups {_listing(ids, name)}"


def _array_phrase(field: str, operator: str, value: Sequence[Any]) -> str:
    if operator == "empty":
        return f"{field} is empty"
    if operator == "not_empty":
        return f"{field} is not empty"
    return f"{field} include {operator} of {_listing(value)}"


STRING_PHRASES: dict[str, Callable[[Any], str]] = {
    "eq": lambda v: f"is {quote(v)}",
    "not_eq": lambda v: f"is not {quote(v)}",
    "in": lambda v: f"is one of {_listing(v)}",
    "not_in": lambda v: f"is none of {_listing(v)}",
    "match": lambda v: f"contains {quote(v)}",
    "starts_with": lambda v: f"starts with {quote(v)}",
    "present": lambda v: "is present",
    "blank": lambda v: "is blank",
}
NUMBER_PHRASES: dict[str, Callable[[Any], str]] = {
    "eq": lambda v: f"is {v}",
    "not_eq": lambda v: f"is not {v}",
    "gt": lambda v: f"is greater than {v}",
    "gte": lambda v: f"is at least {v}",
    "lt": lambda v: f"is less than {v}",
    "lte": lambda v: f"is at most {v}",
    "between": lambda v: f"is between {v[0]} and {v[1]}",
}
DATE_PHRASES: dict[str, Callable[[Any], str]] = {
    "eq": lambda v: f"is {v}",
    "before": lambda v: f"is before {v}",
    "after": lambda v: f"is after {v}",
    "between": lambda v: f"is between {v[0]} and {v[1]}",
    "within_last_days": lambda v: f"is within the last {_days(v)}",
    "more_than_days_ago": lambda v: f"is more than {_days(v)} ago",
    "anniversary_within_days": lambda v: f"has its anniversary within the next {_days(v)}",
}
PHRASES = {"string": STRING_PHRASES, "number": NUMBER_PHRASES, "date": DATE_PHRASES}


def _days(count: int) -> str:
    return "1 day" if count == 1 else f"{count} days"


def describe_leaf(leaf: Leaf, names: Mapping[int, str]) -> str:
    """One condition as a phrase, e.g. ``first name contains 'Ola'``."""
    if leaf.condition_group == "consents":
        return f"consent {quote(leaf.field)} is {'given' if leaf.value else 'refused'}"
    if leaf.type == "array":
        if leaf.field == "members_group_ids":
            return _group_phrase(leaf.operator, leaf.value or (), names)
        return _array_phrase(field_label(leaf.field), leaf.operator, leaf.value or ())
    if leaf.type == "boolean":
        return f"{field_label(leaf.field)} is {'true' if leaf.value else 'false'}"
    return f"{field_label(leaf.field)} {PHRASES[leaf.type][leaf.operator](leaf.value)}"


def _describe(node: Node, names: Mapping[int, str], parent: type[Node] | None) -> str:
    match node:
        case Leaf():
            return describe_leaf(node, names)
        case Not(child=child):
            return f"not ({_describe(child, names, None)})"
        case And(children=children) | Or(children=children):
            if len(children) == 1:
                return _describe(children[0], names, parent)
            joiner = " and " if isinstance(node, And) else " or "
            text = joiner.join(_describe(child, names, type(node)) for child in children)
            # "and" inside "or" (or the reverse) needs parentheses to keep its meaning;
            # the same connective nested in itself reads the same without them.
            return f"({text})" if parent is not None and parent is not type(node) else text
    raise TypeError(node)


def describe_conditions(node: Node, names: Mapping[int, str]) -> str:
    """The whole rule in plain English; ``names`` maps referenced group ids to names.

    An empty rule matches every member of the club.
    """
    if isinstance(node, And) and not node.children:
        return "every member of the club"
    return _describe(node, names, None)
