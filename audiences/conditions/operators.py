"""Per-type operator tables: each maps a positive operator to a boolean SQL condition.

Negative operators (``not_eq``, ``not_in``, ``blank``, ``none``, ``empty``) are the exact
negation of a positive one, so a member with a missing or mistyped value matches the
negative form (``first_name not_eq "Ola"`` holds for a member with no first name). JSON
values are typed strictly: a number property never equals a string, and a value of the
wrong JSON type counts as missing. PostgreSQL and SQLite differ only inside ``VendorSQL``
and give the same answers.
"""

from __future__ import annotations

import json
from calendar import isleap
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from functools import reduce
from operator import and_
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from django.db.models import (
    BooleanField,
    Count,
    Exists,
    F,
    FloatField,
    Func,
    OuterRef,
    Q,
    TextField,
    Value,
)
from django.db.models.functions import Length, Substr
from django.db.models.lookups import (
    Exact,
    GreaterThan,
    GreaterThanOrEqual,
    In,
    IsNull,
    LessThan,
    LessThanOrEqual,
)

from audiences.conditions.grammar import BUILT_IN_FIELDS, KEY, Leaf, msisdn_fragment
from groups.models import Membership
from loyalty import casefold
from members.normalize import InvalidIdentifier, normalize_msisdn

if TYPE_CHECKING:
    from django.db.backends.base.base import BaseDatabaseWrapper
    from django.db.models.sql.compiler import SQLCompiler

NEGATIONS = {
    "not_eq": "eq",
    "not_in": "in",
    "blank": "present",
    "none": "any",
    "empty": "not_empty",
}
DATE_COLUMNS = ("created_at", "updated_at")

Condition = Any  # a Q, a lookup or an Exists: anything ``filter()`` accepts
Sql = tuple[str, Sequence[Any]]


@dataclass(frozen=True)
class Context:
    """What a compilation needs besides the conditions: the club and its "today"."""

    club_id: int
    today: date
    tz: ZoneInfo


class VendorSQL(Func):
    """SQL around one member column, written once per database vendor with its parameters.

    In a template ``{col}`` stands for the column, ``{ref}`` for the JSON value read (on
    PostgreSQL) and ``{path}`` for its JSON path (on SQLite). JSON keys are inlined: the
    grammar admits only ``[A-Za-z_][A-Za-z0-9_]*`` keys, and this class checks again.
    """

    def __init__(
        self,
        column: str,
        keys: Sequence[str],
        *,
        postgresql: Sql,
        sqlite: Sql,
        output_field: Any = None,
    ) -> None:
        super().__init__(F(column), output_field=output_field or BooleanField())
        if not all(KEY.fullmatch(key) for key in keys):
            raise ValueError("unsafe JSON key")
        self.keys = list(keys)
        self.by_vendor = {"postgresql": postgresql, "sqlite": sqlite}

    # Parameters in a list, as Django 5.2's own expressions return them (the stubs say a
    # tuple), and no template arguments (unlike Func's).
    def as_sql(  # type: ignore[override]
        self, compiler: SQLCompiler, connection: BaseDatabaseWrapper, **extra: Any
    ) -> tuple[str, list[Any]]:
        col, _ = compiler.compile(self.source_expressions[0])
        ref = col + "".join(f" -> '{key}'" for key in self.keys)
        path = "'$" + "".join(f'."{key}"' for key in self.keys) + "'"
        sql, params = self.by_vendor[connection.vendor]
        return sql.replace("{ref}", ref).replace("{path}", path).replace("{col}", col), [*params]


def _source(leaf: Leaf) -> tuple[str, list[str]]:
    """The member column a leaf reads and the JSON keys inside it (none for plain columns)."""
    if leaf.condition_group == "consents":
        return "consents", [leaf.field, "status"]
    if leaf.field in BUILT_IN_FIELDS:
        return leaf.field, []
    return "properties", [leaf.field]


def _constant(value: bool) -> Condition:
    """A condition that holds for every member (True) or for none (False)."""
    return Value(value, output_field=BooleanField())


def _json_scalar(leaf: Leaf, pg_type: str, pg_cast: str, sqlite_types: str, output: Any) -> Any:
    """The JSON value a leaf reads, or NULL when it is missing or of another JSON type."""
    return VendorSQL(
        *_source(leaf),
        postgresql=(
            f"CASE WHEN jsonb_typeof({{ref}}) = '{pg_type}' "
            f"THEN ({{ref}} #>> '{{}}')::{pg_cast} END",
            [],
        ),
        sqlite=(
            f"CASE WHEN json_type({{col}}, {{path}}) IN ({sqlite_types}) "
            "THEN json_extract({col}, {path}) END",
            [],
        ),
        output_field=output,
    )


# A day of Python's (proleptic Gregorian) calendar at the start of a text: month lengths
# and leap years spelled out, so that PostgreSQL reads the JSON value once per row.
CALENDAR_DAY = (
    "^(?!0000)(?:[0-9]{4}-(?:(?:0[13578]|1[02])-(?:0[1-9]|[12][0-9]|3[01])"
    "|(?:0[469]|11)-(?:0[1-9]|[12][0-9]|30)|02-(?:0[1-9]|1[0-9]|2[0-8]))"
    "|(?:[0-9]{2}(?:0[48]|[2468][048]|[13579][26])|(?:0[48]|[2468][048]|[13579][26])00)-02-29)"
)


def _calendar_day(text: str) -> str:
    """SQLite: whether ``text``, shaped ``dddd-dd-dd``, starts with a day of the calendar
    (SQLite has no regular expressions)."""
    year, month, day = f"substr({text}, 1, 4)", f"substr({text}, 6, 2)", f"substr({text}, 9, 2)"
    y = f"CAST({year} AS integer)"
    return (
        f"{year} <> '0000' AND {month} BETWEEN '01' AND '12' AND {day} BETWEEN '01' AND "
        f"CASE WHEN {month} IN ('04', '06', '09', '11') THEN '30' WHEN {month} <> '02' THEN '31' "
        f"WHEN {y} %% 4 = 0 AND ({y} %% 100 <> 0 OR {y} %% 400 = 0) THEN '29' ELSE '28' END"
    )


def _json_date_text(leaf: Leaf) -> Any:
    """A date property as its ``YYYY-MM-DD`` text (a longer ISO string is cut), else NULL.

    A value that is not a day of the calendar (``2000-13-45``, ``2023-02-30``) counts as
    missing, like any other non-date.
    """
    sqlite_text = "json_extract({col}, {path})"
    return VendorSQL(
        *_source(leaf),
        postgresql=(
            "CASE WHEN jsonb_typeof({ref}) = 'string' AND ({ref} #>> '{}') ~ %s "
            "THEN left({ref} #>> '{}', 10) END",
            [CALENDAR_DAY],
        ),
        sqlite=(
            f"CASE WHEN json_type({{col}}, {{path}}) = 'text' AND {sqlite_text} "
            "GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]*' "
            # The inner CASE casts the year only once the outer one has checked its shape.
            f"THEN CASE WHEN {_calendar_day(sqlite_text)} "
            f"THEN substr({sqlite_text}, 1, 10) END END",
            [],
        ),
        output_field=TextField(),
    )


# Strings --------------------------------------------------------------------------------


def _stored_form(leaf: Leaf, value: str) -> str:
    """Compare identifiers in their stored form: emails lower-case, msisdns as digits."""
    if leaf.field == "email":
        return value.strip().lower()
    if leaf.field == "msisdn":
        try:
            return normalize_msisdn(value)
        except InvalidIdentifier:
            return value
    return value


def _string(leaf: Leaf) -> Any:
    if leaf.field in BUILT_IN_FIELDS:
        return F(leaf.field)
    return _json_scalar(leaf, "string", "text", "'text'", TextField())


def _present(leaf: Leaf, ctx: Context) -> Condition:
    return Q(IsNull(_string(leaf), False)) & Q(GreaterThan(Length(_string(leaf)), 0))


def _fragment(leaf: Leaf) -> str:
    """The text a ``match``/``starts_with`` leaf looks for, in msisdns as they are stored."""
    return msisdn_fragment(leaf.operator, leaf.value) if leaf.field == "msisdn" else leaf.value


STRING: dict[str, Callable[[Leaf, Context], Condition]] = {
    "eq": lambda leaf, ctx: Exact(_string(leaf), _stored_form(leaf, leaf.value)),
    "in": lambda leaf, ctx: In(_string(leaf), [_stored_form(leaf, v) for v in leaf.value]),
    "match": lambda leaf, ctx: casefold.contains(_string(leaf), _fragment(leaf)),
    "starts_with": lambda leaf, ctx: casefold.starts_with(_string(leaf), _fragment(leaf)),
    "present": _present,
}

# Numbers --------------------------------------------------------------------------------


def _number(leaf: Leaf) -> Any:
    if leaf.field in BUILT_IN_FIELDS:
        return F(leaf.field)
    return _json_scalar(leaf, "number", "float8", "'integer', 'real'", FloatField())


NUMBER: dict[str, Callable[[Leaf, Context], Condition]] = {
    "eq": lambda leaf, ctx: Exact(_number(leaf), leaf.value),
    "gt": lambda leaf, ctx: GreaterThan(_number(leaf), leaf.value),
    "gte": lambda leaf, ctx: GreaterThanOrEqual(_number(leaf), leaf.value),
    "lt": lambda leaf, ctx: LessThan(_number(leaf), leaf.value),
    "lte": lambda leaf, ctx: LessThanOrEqual(_number(leaf), leaf.value),
    "between": lambda leaf, ctx: (
        Q(GreaterThanOrEqual(_number(leaf), leaf.value[0]))
        & Q(LessThanOrEqual(_number(leaf), leaf.value[1]))
    ),
}

# Dates ----------------------------------------------------------------------------------


def _midnight(day: date, ctx: Context) -> datetime:
    return datetime.combine(day, time.min, tzinfo=ctx.tz)


def _days(leaf: Leaf, ctx: Context, first: date | None, last: date | None) -> Condition:
    """Members whose date falls within ``first`` .. ``last`` inclusive (None: open end)."""
    if leaf.field not in DATE_COLUMNS:
        text = _json_date_text(leaf)
        parts = [Q(IsNull(text, False))]
        if first is not None:
            parts.append(Q(GreaterThanOrEqual(text, first.isoformat())))
        if last is not None:
            parts.append(Q(LessThanOrEqual(text, last.isoformat())))
        return reduce(and_, parts)
    # Timestamps are compared with midnights in the club's time zone. The midnights that
    # open 0001-01-01 and close 9999-12-31 may not exist in UTC for Python (OverflowError),
    # and a timestamp beyond them would fall on a day Python's calendar lacks: those ends
    # stay open.
    column = F(leaf.field)
    parts = [Q(IsNull(column, False))]
    if first is not None and first > date.min:
        parts.append(Q(GreaterThanOrEqual(column, _midnight(first, ctx))))
    if last is not None and last < date.max:
        parts.append(Q(LessThan(column, _midnight(last + timedelta(days=1), ctx))))
    return reduce(and_, parts)


def anniversary_month_days(today: date, days: int) -> list[str]:
    """The ``MM-DD`` of today and the next ``days`` days.

    A Feb 29 birthday is celebrated on Feb 28 in years without one.
    """
    window = [today + timedelta(days=n) for n in range(days + 1)]
    month_days = {day.strftime("%m-%d") for day in window}
    if any(d.month == 2 and d.day == 28 and not isleap(d.year) for d in window):
        month_days.add("02-29")
    return sorted(month_days)


def _anniversary(leaf: Leaf, ctx: Context) -> Condition:
    if leaf.field in DATE_COLUMNS:
        offset = datetime.combine(ctx.today, time.min, tzinfo=ctx.tz).utcoffset()
        seconds = int(offset.total_seconds()) if offset else 0
        month_day: Any = VendorSQL(
            leaf.field,
            [],
            postgresql=("to_char({col} AT TIME ZONE %s, 'MM-DD')", [str(ctx.tz)]),
            # SQLite has no time zones: shift by the club's UTC offset today.
            sqlite=("strftime('%%m-%%d', {col}, %s)", [f"{seconds:+d} seconds"]),
            output_field=TextField(),
        )
    else:
        month_day = Substr(_json_date_text(leaf), 6, 5)
    return In(month_day, anniversary_month_days(ctx.today, leaf.value))


def _d(value: str) -> date:
    return date.fromisoformat(value)


def _before(leaf: Leaf, ctx: Context) -> Condition:
    day = _d(leaf.value)
    # No day comes before the calendar's first (and subtracting one would overflow).
    return _days(leaf, ctx, None, day - timedelta(days=1)) if day > date.min else _constant(False)


def _after(leaf: Leaf, ctx: Context) -> Condition:
    day = _d(leaf.value)
    # No day comes after the calendar's last (and adding one would overflow).
    return _days(leaf, ctx, day + timedelta(days=1), None) if day < date.max else _constant(False)


DATE: dict[str, Callable[[Leaf, Context], Condition]] = {
    "eq": lambda leaf, ctx: _days(leaf, ctx, _d(leaf.value), _d(leaf.value)),
    "before": _before,
    "after": _after,
    "between": lambda leaf, ctx: _days(leaf, ctx, _d(leaf.value[0]), _d(leaf.value[1])),
    "within_last_days": lambda leaf, ctx: _days(
        leaf, ctx, ctx.today - timedelta(days=leaf.value), ctx.today
    ),
    "more_than_days_ago": lambda leaf, ctx: _days(
        leaf, ctx, None, ctx.today - timedelta(days=leaf.value + 1)
    ),
    "anniversary_within_days": _anniversary,
}

# Booleans -------------------------------------------------------------------------------

BOOLEAN: dict[str, Callable[[Leaf, Context], Condition]] = {
    "eq": lambda leaf, ctx: Exact(
        _json_scalar(leaf, "boolean", "boolean", "'true', 'false'", BooleanField()), leaf.value
    ),
}

# Arrays ---------------------------------------------------------------------------------


def _memberships(ctx: Context) -> Any:
    return Membership.objects.filter(club_id=ctx.club_id, member_id=OuterRef("pk"))


def _array_any(leaf: Leaf, ctx: Context) -> Condition:
    if leaf.field == "members_group_ids":
        return Exists(_memberships(ctx).filter(group_id__in=list(leaf.value)))
    return VendorSQL(
        *_source(leaf),
        postgresql=(
            "CASE WHEN jsonb_typeof({ref}) = 'array' THEN {ref} @> ANY(%s::jsonb[]) ELSE false END",
            [[json.dumps([v]) for v in leaf.value]],
        ),
        sqlite=(
            "CASE WHEN json_type({col}, {path}) = 'array' THEN EXISTS (SELECT 1 FROM "
            "json_each({col}, {path}) e WHERE e.value IN (SELECT value FROM json_each(%s))) "
            "ELSE 0 END",
            [json.dumps(list(leaf.value))],
        ),
    )


def _array_all(leaf: Leaf, ctx: Context) -> Condition:
    wanted = list(dict.fromkeys(leaf.value))
    if leaf.field == "members_group_ids":
        # One grouped subquery however many groups: the member's rows in them number them
        # all (a member is in a group at most once). An EXISTS per group nested the SQL as
        # deep as the list is long, which SQLite refuses ("expression tree too deep").
        in_all = (
            _memberships(ctx)
            .filter(group_id__in=wanted)
            .values("member_id")
            .annotate(groups=Count("group_id"))
            .filter(groups=len(wanted))
        )
        return Exists(in_all)
    return VendorSQL(
        *_source(leaf),
        postgresql=(
            "CASE WHEN jsonb_typeof({ref}) = 'array' THEN {ref} @> %s::jsonb ELSE false END",
            [json.dumps(wanted)],
        ),
        sqlite=(
            "CASE WHEN json_type({col}, {path}) = 'array' THEN (SELECT count(DISTINCT "
            "e.value) FROM json_each({col}, {path}) e WHERE e.value IN "
            "(SELECT value FROM json_each(%s))) = %s ELSE 0 END",
            [json.dumps(wanted), len(wanted)],
        ),
    )


def _array_not_empty(leaf: Leaf, ctx: Context) -> Condition:
    if leaf.field == "members_group_ids":
        # Every member is in its club's "All members" group, so every member is in some
        # group. Reading the rows instead would depend on the order in which a new member's
        # groups are filled, which no group named in the rule can fix.
        return _constant(True)
    return VendorSQL(
        *_source(leaf),
        postgresql=(
            "CASE WHEN jsonb_typeof({ref}) = 'array' THEN jsonb_array_length({ref}) > 0 "
            "ELSE false END",
            [],
        ),
        sqlite=(
            "CASE WHEN json_type({col}, {path}) = 'array' "
            "THEN json_array_length({col}, {path}) > 0 ELSE 0 END",
            [],
        ),
    )


ARRAY: dict[str, Callable[[Leaf, Context], Condition]] = {
    "any": _array_any,
    "all": _array_all,
    "not_empty": _array_not_empty,
}

OPERATORS: dict[str, dict[str, Callable[[Leaf, Context], Condition]]] = {
    "string": STRING,
    "number": NUMBER,
    "date": DATE,
    "boolean": BOOLEAN,
    "array": ARRAY,
}
