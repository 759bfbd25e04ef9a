"""Parse and validate audience conditions (SPEC section 4) into frozen nodes.

The input is never mutated. Every problem is reported at once in one ``ConditionError``
whose ``details`` tree is keyed by condition index (as a string), then by key, with
leaves that are lists of ``{"error": code, "options": {...}}`` as in the API's 422.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from typing import Any

# Refuse trees that could make a query too large to plan (documented in docs/conditions.md).
MAX_DEPTH = 8
MAX_NODES = 200
MAX_VALUES = 1000
MAX_DAYS = 36_600
MAX_ANNIVERSARY_DAYS = 366

TYPES = ("array", "string", "number", "date", "boolean")
OPERATORS: dict[str, tuple[str, ...]] = {
    "array": ("any", "all", "none", "empty", "not_empty"),
    "string": (
        "eq",
        "not_eq",
        "in",
        "not_in",
        "match",
        "starts_with",
        "present",
        "blank",
    ),
    "number": ("eq", "not_eq", "gt", "gte", "lt", "lte", "between"),
    "date": (
        "eq",
        "before",
        "after",
        "between",
        "within_last_days",
        "more_than_days_ago",
        "anniversary_within_days",
    ),
    "boolean": ("eq",),
}
CONDITION_GROUPS = ("member_properties", "consents")
# Fields with a fixed type; any other safe key is a property of the type the condition names.
BUILT_IN_FIELDS = {
    "id": "number",
    "email": "string",
    "msisdn": "string",
    "sms_status": "string",
    "email_status": "string",
    "push_status": "string",
    "created_at": "date",
    "updated_at": "date",
    "members_group_ids": "array",
    "subunit_ids": "array",
    "favorite_stores": "array",
}
# Properties whose type SPEC section 4 names: a condition of another type on them is refused.
PROPERTY_TYPES = {
    "first_name": "string",
    "last_name": "string",
    "gender": "string",
    "language": "string",
    "interests": "array",
    "birthday": "date",
}
# Operators that take no value.
NO_VALUE = {"empty", "not_empty", "present", "blank"}
# Matched against the whole string (fullmatch): "$" would let a trailing newline through.
KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")
DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
# What people write in a phone number that a stored msisdn (digits only) never has.
MSISDN_PUNCTUATION = re.compile(r"[\s+\-().]")


@dataclass(frozen=True)
class Leaf:
    condition_group: str
    type: str
    field: str
    operator: str
    value: Any = None


@dataclass(frozen=True)
class And:
    children: tuple[Node, ...]


@dataclass(frozen=True)
class Or:
    children: tuple[Node, ...]


@dataclass(frozen=True)
class Not:
    child: Node


Node = Leaf | And | Or | Not


class ConditionError(ValueError):
    """Conditions that do not parse; ``details`` points at each problem by index."""

    def __init__(self, details: dict[str, Any] | list[dict[str, Any]]) -> None:
        self.details = details
        super().__init__("Invalid conditions")


def _error(code: str, **options: Any) -> list[dict[str, Any]]:
    return [{"error": code, "options": options}]


BRANCH_OPERATORS = ("and", "or", "not")


class _Parser:
    def __init__(self) -> None:
        self.nodes = 0

    def parse_list(self, data: Any, depth: int) -> tuple[tuple[Node, ...], Any]:
        """Parse an array of conditions; return the nodes and the details of any errors."""
        if not isinstance(data, list):
            return (), _error("not_an_array")
        nodes: list[Node] = []
        details: dict[str, Any] = {}
        for index, item in enumerate(data):
            node, problems = self.parse_node(item, depth)
            if problems:
                details[str(index)] = problems
            elif node is not None:
                nodes.append(node)
        return tuple(nodes), details

    def parse_node(self, data: Any, depth: int) -> tuple[Node | None, Any]:
        self.nodes += 1
        if self.nodes > MAX_NODES:
            return None, _error("too_many_conditions", max=MAX_NODES)
        if not isinstance(data, dict):
            return None, _error("not_an_object")
        if data.get("operator") in BRANCH_OPERATORS:
            return self.parse_branch(data, depth)
        if "conditions" in data and "type" not in data and "field" not in data:
            # Shaped as a branch: the operator is what is wrong, not a missing type or field.
            return None, {"operator": _error("inclusion", allowed=list(BRANCH_OPERATORS))}
        return self.parse_leaf(data)

    def parse_branch(self, data: dict[str, Any], depth: int) -> tuple[Node | None, Any]:
        if depth >= MAX_DEPTH:
            return None, {"conditions": _error("too_deep", max=MAX_DEPTH)}
        children, problems = self.parse_list(data.get("conditions"), depth + 1)
        if problems:
            return None, {"conditions": problems}
        if not children:
            return None, {"conditions": _error("blank")}
        if data["operator"] == "and":
            return And(children), None
        if data["operator"] == "or":
            return Or(children), None
        return Not(And(children)), None

    def parse_leaf(self, data: dict[str, Any]) -> tuple[Node | None, Any]:
        details: dict[str, Any] = {}
        group = data.get("condition_group", "member_properties")
        type_ = data.get("type")
        operator = data.get("operator")
        field = data.get("field")
        if group not in CONDITION_GROUPS:
            details["condition_group"] = _error("inclusion", allowed=list(CONDITION_GROUPS))
        if type_ not in TYPES:
            details["type"] = _error("inclusion", allowed=list(TYPES))
        elif operator not in OPERATORS[type_]:
            details["operator"] = _error("inclusion", allowed=list(OPERATORS[type_]))
        field_problem = _check_field(group, type_, field)
        if field_problem:
            details["field"] = field_problem
        if details:
            return None, details
        # As checked above: a type and an operator of the grammar's, a field name.
        assert isinstance(type_, str)
        assert isinstance(operator, str)
        assert isinstance(field, str)
        if group == "consents" and field.startswith("consents."):
            field = field.removeprefix("consents.")
        value = data.get("value")
        value_problem = _check_value(type_, operator, field, value)
        if value_problem:
            return None, {"value": value_problem}
        if operator in NO_VALUE:
            value = None
        elif isinstance(value, list):
            value = tuple(value)
        return Leaf(group, type_, field, operator, value), None


def _check_field(group: Any, type_: Any, field: Any) -> Any:
    if not isinstance(field, str) or not field:
        return _error("blank")
    if group == "consents":
        name = field.removeprefix("consents.")
        if not KEY.fullmatch(name):
            return _error("invalid_key")
        if type_ != "boolean":
            return _error("type_mismatch", expected="boolean")
        return None
    fixed = BUILT_IN_FIELDS.get(field) or PROPERTY_TYPES.get(field)
    if fixed is not None and type_ in TYPES and fixed != type_:
        return _error("type_mismatch", expected=fixed)
    if fixed is None and not KEY.fullmatch(field):
        return _error("invalid_key")
    return None


def msisdn_fragment(operator: str, value: str) -> str:
    """A ``match``/``starts_with`` value on msisdn, as the stored digits would contain it.

    Spaces, ``+``, ``-``, ``.`` and parentheses go; a ``starts_with`` value also loses a
    leading ``00``, the international prefix that stored msisdns are written without.
    """
    digits = MSISDN_PUNCTUATION.sub("", value)
    return digits.removeprefix("00") if operator == "starts_with" else digits


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def is_date(value: Any) -> bool:
    """True for a ``YYYY-MM-DD`` day of the calendar."""
    if not isinstance(value, str) or not DATE.fullmatch(value):
        return False
    try:
        date.fromisoformat(value)
    except ValueError:
        return False
    return True


def _is_scalar(value: Any) -> bool:
    return isinstance(value, str) or _is_number(value)


def _check_list(value: Any, item_ok: Any, code: str) -> Any:
    if not isinstance(value, list) or not value:
        return _error("not_a_non_empty_array")
    if len(value) > MAX_VALUES:
        return _error("too_long", max=MAX_VALUES)
    bad = {str(i): _error(code) for i, item in enumerate(value) if not item_ok(item)}
    return bad or None


def _check_value(type_: str, operator: str, field: str, value: Any) -> Any:
    if operator in NO_VALUE:
        return None
    if type_ == "array":
        if field in ("members_group_ids", "subunit_ids", "favorite_stores"):
            return _check_list(
                value, lambda v: isinstance(v, int) and not isinstance(v, bool), "not_an_integer"
            )
        return _check_list(value, _is_scalar, "not_a_string_or_number")
    if type_ == "string":
        if operator in ("in", "not_in"):
            return _check_list(value, lambda v: isinstance(v, str), "not_a_string")
        if not isinstance(value, str) or value == "":
            return _error("not_a_string")
        if field == "msisdn" and operator in ("match", "starts_with"):
            digits = msisdn_fragment(operator, value)
            return None if digits.isascii() and digits.isdigit() else _error("not_msisdn_digits")
        return None
    if type_ == "number":
        if operator == "between":
            return _check_pair(value, _is_number, "not_a_number")
        return None if _is_number(value) else _error("not_a_number")
    if type_ == "date":
        if operator == "between":
            return _check_pair(value, is_date, "not_a_date")
        if operator in ("eq", "before", "after"):
            return None if is_date(value) else _error("not_a_date", format="YYYY-MM-DD")
        most = MAX_ANNIVERSARY_DAYS if operator == "anniversary_within_days" else MAX_DAYS
        if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= most:
            return None
        return _error("not_a_day_count", min=0, max=most)
    return None if isinstance(value, bool) else _error("not_a_boolean")


def _check_pair(value: Any, item_ok: Any, code: str) -> Any:
    if not isinstance(value, list) or len(value) != 2:
        return _error("not_a_pair")
    if not all(item_ok(v) for v in value):
        return _error(code)
    if value[0] > value[1]:
        return _error("reversed_range")
    return None


def as_condition_list(data: Any) -> Any:
    """``data`` with a single condition object, where an array of conditions is expected (the
    top level, a branch's ``conditions``), made a one-element array; anything else as it is.

    The platform's docs type ``audience_conditions`` as "Object", so its clients send one
    condition bare. A new structure is returned: the input is not changed.
    """
    if isinstance(data, dict):
        data = [data]
    if not isinstance(data, list):
        return data
    return [
        {**item, "conditions": as_condition_list(item["conditions"])}
        if isinstance(item, dict)
        and item.get("operator") in BRANCH_OPERATORS
        and "conditions" in item
        else item
        for item in data
    ]


def parse_conditions(data: Any) -> And:
    """Parse the JSON array of conditions (ANDed) or raise ``ConditionError``."""
    nodes, problems = _Parser().parse_list(data, depth=0)
    if problems:
        raise ConditionError(problems)
    return And(nodes)
