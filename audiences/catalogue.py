"""What a rule may name, for the admin's rule builder: the fields, each with its type.

The standard fields are the grammar's. A club's own property keys and consent names come
from a sample: the club's newest ``SAMPLE_MEMBERS`` members, read with one query that walks
the ``(club, id)`` index backwards and stops there, whatever the club's size. A key that
only older members have is missing from the sample; the builder still takes it as typed
("another property"), and a rule that names it shows it.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

from django.db.models import F, QuerySet

from audiences.conditions.grammar import (
    BUILT_IN_FIELDS,
    KEY,
    MAX_DEPTH,
    NO_VALUE,
    OPERATORS,
    PROPERTY_TYPES,
    is_date,
)
from audiences.describe import field_label
from loyalty.db import InArray
from loyalty.models import Club
from members.models import ChannelStatus, Member

SAMPLE_MEMBERS = 1000
# Labels that read better in a field picker than the column name.
PICKER_LABELS = {"members_group_ids": "member of groups"}
STATUS_FIELDS = ("sms_status", "email_status", "push_status")
# The built-in arrays hold ids: the grammar takes integers only in them.
INTEGER_ARRAYS = frozenset(field for field, type_ in BUILT_IN_FIELDS.items() if type_ == "array")


@dataclass(frozen=True)
class FieldChoice:
    """A field a condition may name, as the builder offers it."""

    field: str
    type: str
    condition_group: str
    label: str
    # "standard" (SPEC section 4), "consent" or "property" (found in the club's members).
    kind: str
    # The values the field takes, when they are a fixed few (the channel statuses).
    choices: tuple[str, ...] = ()
    # Of an array property: "number" when every sampled element is a number, else "string".
    items: str = "string"

    def as_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "field": self.field,
            "type": self.type,
            "condition_group": self.condition_group,
            "label": self.label,
            "kind": self.kind,
        }
        if self.choices:
            data["choices"] = list(self.choices)
        if self.type == "array":
            data["items"] = "number" if self.field in INTEGER_ARRAYS else self.items
        return data


def standard_fields() -> list[FieldChoice]:
    """The fields of SPEC section 4 that every club has, ordered by label."""
    fields = [
        FieldChoice(
            field=field,
            type=type_,
            condition_group="member_properties",
            label=PICKER_LABELS.get(field, field_label(field)),
            kind="standard",
            choices=tuple(ChannelStatus.values) if field in STATUS_FIELDS else (),
        )
        for field, type_ in {**BUILT_IN_FIELDS, **PROPERTY_TYPES}.items()
    ]
    return sorted(fields, key=lambda choice: choice.label.casefold())


def grammar() -> dict[str, Any]:
    """What the builder needs of the grammar: operators by type, and the limits it checks."""
    return {
        "operators": {type_: list(operators) for type_, operators in OPERATORS.items()},
        "no_value": sorted(NO_VALUE),
        "max_depth": MAX_DEPTH,
        "key_pattern": KEY.pattern,
        "fields": [choice.as_json() for choice in standard_fields()],
    }


def _json_type(value: Any) -> str | None:
    """The condition type a property value suggests; None for null and objects."""
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        # The engine reads a date property from the first ten characters of a string.
        return "date" if is_date(value[:10]) else "string"
    if isinstance(value, list):
        return "array"
    return None


def _property_type(seen: Counter[str]) -> str:
    """The type of a key from the types of its sampled values: the most common one, where a
    key holding dates and other strings is a string."""
    if seen["date"] and seen["string"]:
        seen = Counter({**seen, "string": seen["string"] + seen.pop("date")})
    return seen.most_common(1)[0][0]


def member_sample(club: Club) -> QuerySet[Member, tuple[Any, Any]]:
    """The properties and consents of the club's newest members, at most SAMPLE_MEMBERS.

    The club is tested against an array, not with "=", and kept in the order: with an
    equality the planner may walk the primary key backwards instead, past every newer
    member of the other clubs.
    """
    return (
        Member.objects.filter(InArray(F("club_id"), [club.pk]))
        .order_by("-club_id", "-pk")
        .values_list("properties", "consents")[:SAMPLE_MEMBERS]
    )


def club_fields(club: Club) -> tuple[list[FieldChoice], int]:
    """The property keys and consent names found in the club's newest members, with their
    types; and how many members were read."""
    sample = list(member_sample(club))
    types: dict[str, Counter[str]] = {}
    numeric_items: dict[str, bool] = {}
    consents: set[str] = set()
    for properties, member_consents in sample:
        for key, value in (properties or {}).items():
            type_ = _json_type(value)
            if type_ is None or not KEY.fullmatch(key) or key in BUILT_IN_FIELDS:
                continue
            types.setdefault(key, Counter())[type_] += 1
            if type_ == "array" and value:
                numbers = all(_json_type(item) == "number" for item in value)
                numeric_items[key] = numeric_items.get(key, True) and numbers
        consents.update(name for name in (member_consents or {}) if KEY.fullmatch(name))
    properties = [
        FieldChoice(
            field=key,
            type=_property_type(seen),
            condition_group="member_properties",
            label=field_label(key),
            kind="property",
            items="number" if numeric_items.get(key) else "string",
        )
        for key, seen in types.items()
        if key not in PROPERTY_TYPES
    ]
    consent_fields = [
        FieldChoice(
            field=f"consents.{name}",
            type="boolean",
            condition_group="consents",
            label=f"consent {field_label(name)}",
            kind="consent",
        )
        for name in consents
    ]
    ordered = sorted(properties, key=lambda choice: choice.label.casefold()) + sorted(
        consent_fields, key=lambda choice: choice.label.casefold()
    )
    return ordered, len(sample)
