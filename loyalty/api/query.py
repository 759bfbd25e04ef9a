"""The query string's wire format: which parameters an endpoint takes, and their values.

One rule for every endpoint that reads its query string (the lists, a group's events and
stats, the CSV download), so that no filter is ever dropped in silence:

- an array parameter ``x`` may be sent as ``x[]=1&x[]=2``, as ``x[0]=1&x[1]=2`` (the index
  form of the common query-string libraries) or, for one value, as ``x=1``: all the same;
- a keyed parameter (``properties[<key>]``) takes the same three forms after its key;
- any other parameter is 422 ``unknown_parameter``, named as sent, its options listing the
  accepted names; so is a parameter of one value sent twice (``not_a_single_value``);
- a NUL anywhere is 422: PostgreSQL cannot compare text holding one.

``read_query`` turns the query into a ``QueryDict`` keyed by plain names (``x``, or
``properties[<key>]``), which the FilterSets, the pages and the sorting read.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any, TypeVar

from django.http import QueryDict
from django.utils.dateparse import parse_date, parse_datetime

from loyalty.errors import InvalidParameters

INTEGER = re.compile(r"-?[0-9]+")
TRUE_VALUES = ("true", "1")
FALSE_VALUES = ("false", "0")
# A name, then its bracketed parts: ids, ids[], ids[0], properties[tier][1].
SHAPE = re.compile(r"([^\[\]]+)((?:\[[^\[\]]*\])*)")
PART = re.compile(r"\[([^\[\]]*)\]")
# A property key: no brackets, no control characters.
KEY = re.compile(r"[^\[\]\x00-\x1f\x7f]+")
INDEX = re.compile(r"[0-9]{1,9}")

_T = TypeVar("_T")


@dataclass(frozen=True)
class Parameter:
    """A query parameter an endpoint takes: ``array`` ones take several values, ``keyed``
    ones a key in brackets (``properties[tier]``), and may then take several values."""

    name: str
    array: bool = False
    keyed: bool = False

    @property
    def wire_names(self) -> list[str]:
        """How the API's documentation and errors spell the parameter."""
        if self.keyed:
            return [f"{self.name}[<key>]", f"{self.name}[<key>][]"]
        return [f"{self.name}[]" if self.array else self.name]


# ``?format=`` changes nothing (every answer is JSON), but a client may send it.
FORMAT = Parameter("format")


class BadValue(ValueError):
    """A query value that does not parse: its error code and options (SPEC's details)."""

    def __init__(self, code: str, **options: Any) -> None:
        super().__init__(code)
        self.code = code
        self.options = options

    def leaf(self) -> list[dict[str, Any]]:
        return [{"error": self.code, "options": self.options}]


def _error(code: str, **options: Any) -> list[dict[str, Any]]:
    return [{"error": code, "options": options}]


def _values(forms: list[tuple[int | None, list[str]]]) -> list[str]:
    """The values of one array: ``x`` and ``x[]`` in the order sent, then ``x[0]``, ``x[1]``
    and so on by index."""
    plain = [value for index, values in forms if index is None for value in values]
    indexed = sorted((index, values) for index, values in forms if index is not None)
    return plain + [value for _index, values in indexed for value in values]


def read_query(query: QueryDict, parameters: Iterable[Parameter]) -> QueryDict:
    """``query`` keyed by plain names, or 422 naming every parameter that breaks the rule."""
    by_name = {parameter.name: parameter for parameter in parameters}
    accepted = sorted(name for p in by_name.values() for name in p.wire_names)
    details: dict[str, Any] = {}
    forms: dict[str, list[tuple[int | None, list[str]]]] = {}
    for raw, values in query.lists():
        if "\x00" in raw or any("\x00" in value for value in values):
            details[raw.replace("\x00", "").removesuffix("[]")] = _error(
                "null_characters_not_allowed"
            )
            continue
        shape = SHAPE.fullmatch(raw)
        parameter = by_name.get(shape.group(1)) if shape else None
        if shape is None or parameter is None:
            details[raw] = _error("unknown_parameter", accepted=accepted)
            continue
        name, parts = parameter.name, PART.findall(shape.group(2))
        if parameter.keyed:
            if not parts or not KEY.fullmatch(parts[0]):
                # properties, properties[], properties[a\x1fb]: no usable key.
                details[name] = _error("invalid", parameter=raw)
                continue
            name, parts = f"{name}[{parts[0]}]", parts[1:]
        many = parameter.array or parameter.keyed
        if not parts:
            index = None
        elif many and len(parts) == 1 and (parts[0] == "" or INDEX.fullmatch(parts[0])):
            index = int(parts[0]) if parts[0] else None
        else:
            # name[] of a one-value parameter, ids[x], ids[0][1], properties[a][b].
            if parameter.keyed:
                details[parameter.name] = _error("invalid", parameter=raw)
            else:
                details[raw] = _error("unknown_parameter", accepted=accepted)
            continue
        if not many and len(values) > 1:
            details[name] = _error("not_a_single_value", count=len(values))
            continue
        forms.setdefault(name, []).append((index, values))
    if details:
        raise InvalidParameters(details=details)
    normalized = QueryDict(mutable=True)
    for name, sent in forms.items():
        normalized.setlist(name, _values(sent))
    return normalized


# Values ---------------------------------------------------------------------------------


def integer(raw: str, *, min_value: int, max_value: int) -> int:
    """An integer within the bounds."""
    raw = raw.strip()
    if not INTEGER.fullmatch(raw):
        raise BadValue("invalid", value=raw)
    if int(raw) < min_value:
        raise BadValue("min_value", count=min_value)
    if int(raw) > max_value:
        raise BadValue("max_value", count=max_value)
    return int(raw)


def boolean(raw: str) -> bool:
    """``true``/``1`` or ``false``/``0``, in any case."""
    if raw.strip().lower() in TRUE_VALUES:
        return True
    if raw.strip().lower() in FALSE_VALUES:
        return False
    raise BadValue("invalid", value=raw)


def choice(raw: str, choices: Sequence[str]) -> str:
    if raw not in choices:
        raise BadValue("invalid_choice", value=raw, choices=list(choices))
    return raw


def _parsed(parse: Callable[[str], _T | None], raw: str, code: str) -> _T:
    """``raw`` parsed by Django's date parser ``parse`` (None or ValueError: refused)."""
    try:
        parsed = parse(raw.strip())
    except ValueError:  # well formed but out of range, e.g. month 13
        parsed = None
    if parsed is None:
        raise BadValue(code, value=raw)
    return parsed


def moment(raw: str) -> datetime:
    """An ISO 8601 date and time, in UTC; without an offset it is UTC."""
    parsed = _parsed(parse_datetime, raw, "invalid_datetime")
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=UTC)
    try:
        # In UTC: PostgreSQL refuses offsets beyond 15:59 that Python parses.
        return parsed.astimezone(UTC)
    except OverflowError:
        raise BadValue("invalid_datetime", value=raw) from None


def day(raw: str) -> date:
    """A calendar date, YYYY-MM-DD."""
    return _parsed(parse_date, raw, "invalid_date")
