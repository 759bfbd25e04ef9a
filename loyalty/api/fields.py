"""Strict JSON fields of the API's payloads: each takes its JSON type only, as the OpenAPI
schema says, and no JSON value in a payload may hold what PostgreSQL cannot store."""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from typing import Any

from rest_framework import serializers

# How deep objects and arrays may nest in a JSON value, the value itself being level 1. No
# payload needs that much (conditions nest at most 8 nodes deep), and it stays far below
# the recursion limit of the JSON decoder, the validators and the renderer.
MAX_JSON_DEPTH = 64


def deeper_than(value: Any, limit: int = MAX_JSON_DEPTH) -> bool:
    """Whether objects and arrays nest more than ``limit`` levels, ``value`` being level 1."""
    level, containers = 1, [value] if isinstance(value, dict | list) else []
    while containers:
        if level > limit:
            return True
        children: list[Any] = []
        for container in containers:
            items = container.values() if isinstance(container, dict) else container
            children.extend(item for item in items if isinstance(item, dict | list))
        containers, level = children, level + 1
    return False


# Why a JSON value cannot be stored, by error code. PostgreSQL stores neither NUL nor half
# of a UTF-16 surrogate pair (JSON's "\ud800" decodes to one, which not even the renderer
# can encode) in text or jsonb, and jsonb takes no infinity (JSON's 1e400 decodes to one);
# DRF's FloatField and JSONField call a non-finite number "invalid" too.
UNSTORABLE = {
    "null_characters_not_allowed": "Null characters are not allowed.",
    "surrogate_characters_not_allowed": "Lone surrogate characters are not allowed.",
    "invalid": "Numbers must be finite.",
}
_UNSTORABLE_CHARACTER = re.compile("[\x00\ud800-\udfff]")


def scalars(value: Any) -> Iterator[Any]:
    """Every key and scalar of a JSON value.

    A walk with a stack, not recursion: no depth of nesting can exhaust it (the import
    command's rows are not held to the API's depth limit).
    """
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, dict):
            pending.extend(item.keys())
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)
        else:
            yield item


def unstorable(value: Any) -> str | None:
    """The code in ``UNSTORABLE`` of something in a JSON value PostgreSQL cannot store."""
    for item in scalars(value):
        if isinstance(item, str):
            if found := _UNSTORABLE_CHARACTER.search(item):
                nul = found[0] == "\x00"
                return "null_characters_not_allowed" if nul else "surrogate_characters_not_allowed"
        elif isinstance(item, float) and not math.isfinite(item):
            return "invalid"
    return None


def reject_unstorable(value: Any) -> None:
    """Refuse a NUL, a lone surrogate or a non-finite number anywhere in a JSON value."""
    if code := unstorable(value):
        raise serializers.ValidationError(UNSTORABLE[code], code=code)


def reject_unstorable_at(value: Any) -> None:
    """``reject_unstorable``, the error pointing at where it is found: array elements by
    their index, object members by their key, an unstorable key at its object. For values
    whose errors must point at an index (conditions, SPEC section 4); held to the API's
    depth limit, so the recursion is bounded."""

    def where(item: Any) -> Any:
        if isinstance(item, dict) and (key := next(filter(unstorable, item), None)) is not None:
            return error(key)
        members = item.items() if isinstance(item, dict) else enumerate(item)
        key, member = next((key, member) for key, member in members if unstorable(member))
        return {str(key): where(member) if isinstance(member, dict | list) else error(member)}

    def error(scalar: Any) -> Any:
        code = unstorable(scalar)
        assert code is not None
        return [serializers.ErrorDetail(UNSTORABLE[code], code=code)]

    if unstorable(value) is not None:
        raise serializers.ValidationError(
            where(value) if isinstance(value, dict | list) else error(value)
        )


class StrictCharField(serializers.CharField):
    """A JSON string only: DRF's CharField also takes numbers, which the schema refuses.

    ``max_length`` holds for the string as sent, as the schema's ``maxLength`` says: DRF
    checks it after trimming, so a string one over with a leading control character (which
    ``str.strip`` takes for whitespace) was stored (the schema fuzzing found it).
    """

    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str):
            self.fail("invalid")
        if self.max_length is not None and len(data) > self.max_length:
            self.fail("max_length", max_length=self.max_length, length=len(data))
        return str(super().to_internal_value(data))


class StrictIntegerField(serializers.IntegerField):
    """A JSON integer only: DRF's IntegerField also takes digit strings, floats and booleans."""

    def to_internal_value(self, data: Any) -> int:
        if isinstance(data, bool) or not isinstance(data, int):
            self.fail("invalid")
        return int(super().to_internal_value(data))


class StrictBooleanField(serializers.BooleanField):
    """JSON true or false only: DRF's BooleanField also takes "yes", 1 and the like."""

    def to_internal_value(self, data: Any) -> bool:
        if not isinstance(data, bool):
            self.fail("invalid")
        return data
