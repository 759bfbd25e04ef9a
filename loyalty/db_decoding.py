"""Reading column values in C: the reads of a page decode hundreds of timestamps and JSON
documents, and Django's decoders for both run Python code per value.

Each gives exactly the values Django's own decoders give (``tests/loyalty/test_db_decoding.py``
and ``tests/postgres/test_db_decoding.py`` compare them); the API's lists spent a fifth of
their CPU in those decoders.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast

from django.core.exceptions import EmptyResultSet
from django.db import connections, models, router
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import QuerySet
from django.db.models.query import ValuesIterable
from psycopg import adapt
from psycopg.abc import AdaptContext

# The C scanner json.loads runs, without its Python layers (two regular expressions for the
# surrounding whitespace, three calls): a stored JSON value has no surrounding whitespace.
ScanOnce = Callable[[str, int], tuple[Any, int]]
_scan_once = cast(ScanOnce, json.JSONDecoder().scan_once)  # type: ignore[attr-defined]


_UNPARSED = object()


def _scanned(value: Any) -> Any:
    """``value``, the text of a stored JSON document, parsed by the C scanner; ``_UNPARSED``
    when it is not one JSON value alone (Django's decoder then gives its answer)."""
    if type(value) is str:
        try:
            parsed, end = _scan_once(value, 0)
        except (StopIteration, ValueError):
            return _UNPARSED
        if end == len(value):
            return parsed
    return _UNPARSED


class JSONField(models.JSONField):
    """Django's ``JSONField``, parsing what the database returns with the C scanner.

    Migrations see Django's field (same column, same options): decoding is not part of the
    schema, and a changed field path would make SQLite re-make each table.
    """

    def from_db_value(self, value: Any, expression: Any, connection: BaseDatabaseWrapper) -> Any:
        if self.decoder is None:
            parsed = _scanned(value)
            if parsed is not _UNPARSED:
                return parsed
        return super().from_db_value(value, expression, connection)

    def deconstruct(self) -> tuple[str, str, Sequence[Any], dict[str, Any]]:
        name, _path, args, kwargs = super().deconstruct()
        return name, "django.db.models.JSONField", args, kwargs


def _c_timestamptz_loader() -> type[adapt.Loader] | None:
    from psycopg import _cmodule

    module = _cmodule._psycopg
    return None if module is None else cast(type[adapt.Loader], module.TimestamptzLoader)


class UtcTimestamptzLoader(adapt.Loader):
    """psycopg's C ``timestamptz`` loader, where Django registers its Python one.

    Django's gives each datetime its connection's time zone, UTC, by parsing in Python and
    replacing the zone; the C loader gives the session's, which Django has set to UTC before
    this loader is registered (nothing here sets another ``TimeZone`` later: a session that
    did would get the same instants in its zone). ``timezone`` is what Django compares to
    decide whether a cursor needs its own loader.
    """

    timezone = UTC
    c_loader: type[adapt.Loader] | None = _c_timestamptz_loader()

    def __init__(self, oid: int, context: AdaptContext | None = None) -> None:
        super().__init__(oid, context)
        assert self.c_loader is not None  # registered only where psycopg's C module is
        self._c_load = self.c_loader(oid, context).load
        # The C loader's own method on the instance, so that psycopg decodes a row's values
        # without a Python call; the method below says the same for a caller of the class.
        self.load = self._c_load  # type: ignore[method-assign]

    def load(self, data: Any) -> datetime:
        value: datetime = self._c_load(data)
        return value


def use_c_timestamptz_loader(
    sender: type[BaseDatabaseWrapper], connection: BaseDatabaseWrapper, **kwargs: Any
) -> None:
    """``connection_created`` receiver: a PostgreSQL connection in UTC decodes its
    ``timestamptz`` values with psycopg's C loader (any other keeps Django's)."""
    if (
        connection.vendor == "postgresql"
        and UtcTimestamptzLoader.c_loader is not None
        and connection.timezone is UTC
        and connection.connection.info.parameter_status("TimeZone") == "UTC"
    ):
        connection.connection.adapters.register_loader("timestamptz", UtcTimestamptzLoader)


# A column's converters (Django's, in order), its expression, and whether it is a JSON
# column the loop scans itself (its converter then only for text that is not one value).
Converters = tuple[list[Callable[[Any, Any, BaseDatabaseWrapper], Any]], Any, bool]


@dataclass(frozen=True)
class _Reading:
    """How to read a ``values()`` queryset's rows: its SQL, names and converted columns."""

    sql: str
    params: list[Any]
    names: list[str]
    # Position of each column that needs converting, and how.
    converters: list[tuple[int, Converters]]


def _is_scanned(convs: list[Any]) -> bool:
    """Whether a column's converters are only a ``JSONField``'s without a decoder."""
    only = convs[0]
    return (
        len(convs) == 1
        and getattr(only, "__func__", None) is JSONField.from_db_value
        and only.__self__.decoder is None
    )


def _reading(rows: QuerySet[Any, Any]) -> _Reading | None:
    """How to read ``rows`` (``_read``); None where Django's own walk is needed: a queryset
    that is not ``values()``, or one with columns Django trims or groups (extra ordering
    columns, composite keys). Raises ``EmptyResultSet`` for a query that reads nothing.
    """
    if not issubclass(rows._iterable_class, ValuesIterable):
        return None
    query = rows.query
    compiler = query.get_compiler(rows.db)
    sql, params = compiler.as_sql()
    if not sql:
        raise EmptyResultSet
    fields = [column[0] for column in compiler.select[: compiler.col_count]]
    if compiler.has_extra_select or compiler.has_composite_fields(fields):
        return None
    converters = [
        (position, (convs, expression, _is_scanned(convs)))
        for position, (convs, expression) in compiler.get_converters(fields).items()
    ]
    names = (
        list(query.selected)
        if query.selected
        else [*query.extra_select, *query.values_select, *query.annotation_select]
    )
    return _Reading(sql, list(params), names, converters)


def _read(alias: str, reading: _Reading, params: Sequence[Any]) -> list[dict[str, Any]]:
    connection = connections[alias]
    with connection.cursor() as cursor:
        cursor.execute(reading.sql, params)
        found = cursor.fetchall()
    names = reading.names
    if not reading.converters or not found:
        return [dict(zip(names, row, strict=True)) for row in found]
    # Column by column: a page's JSON columns are each parsed in one call.
    columns: list[Sequence[Any]] = list(zip(*found, strict=True))
    whole = connection.vendor == "postgresql"
    for position, (convs, expression, scanned) in reading.converters:
        column = columns[position]
        parsed = _scanned_whole(column) if whole and scanned else None
        columns[position] = (
            parsed
            if parsed is not None
            else [_converted(value, convs, expression, connection, scanned) for value in column]
        )
    return [dict(zip(names, values, strict=True)) for values in zip(*columns, strict=True)]


def _scanned_whole(texts: Sequence[Any]) -> list[Any] | None:
    """PostgreSQL's texts of a JSON column parsed as one array, by one call of the C scanner;
    None when one is not text (SQL NULL): each is then decoded alone.

    PostgreSQL writes each ``json`` or ``jsonb`` value as one whole JSON document (it
    refuses any other on input), so the array holds one item per value, each what the value
    alone parses to. Not for SQLite's texts, which may be anything.
    """
    if not all(type(text) is str for text in texts):
        return None
    joined = "[" + ",".join(texts) + "]"
    try:
        parsed, end = _scan_once(joined, 0)
    except (StopIteration, ValueError):
        return None
    if end != len(joined) or len(parsed) != len(texts):
        return None
    return cast(list[Any], parsed)


def _converted(
    value: Any, convs: Any, expression: Any, connection: BaseDatabaseWrapper, scanned: bool
) -> Any:
    """One value through its column's converters (a JSON text scanned first, when it can)."""
    parsed = _scanned(value) if scanned else _UNPARSED
    if parsed is not _UNPARSED:
        return parsed
    for convert in convs:
        value = convert(value, expression, connection)
    return value


def value_rows(rows: QuerySet[Any, Any]) -> list[Any]:
    """``list(rows)`` of a ``values()`` queryset: the same dicts, read column by column.

    Django passes each row through ``apply_converters``, a Python call per converted value:
    a page of 100 members has 400 JSON values, and that walk cost more CPU than reading
    the rows. Here each JSON column (``JSONField`` without a decoder) is parsed in one call
    on PostgreSQL (``_scanned_whole``), value by value elsewhere, and any other column's
    converters (SQLite's datetimes, say) are called on its values; where Django's own walk
    is needed (``_reading``), ``list(rows)``.
    """
    try:
        reading = _reading(rows)
    except EmptyResultSet:
        return []
    if reading is None:
        return list(rows)
    return _read(rows.db, reading, reading.params)


# Stand-ins for a compiled query's parameters: ids that no row has, each told apart (and
# none the text of another).
_MARKERS = tuple(-(2**62) - n for n in range(4))
Arguments = Sequence[int | Sequence[int]]


class CompiledRows:
    """A ``values()`` query of ``model`` compiled once per database, run with other ids.

    Django builds and compiles a queryset's SQL on every use: 0.3 to 0.5 ms of CPU for a
    lookup of one group, which runs in 0.1 ms. ``build`` makes the queryset from ``ids``
    arguments (at most four); it is built once with stand-ins, whose places in the compiled
    parameters take the arguments of each call. An argument is an id, bound as a plain
    parameter, or, at the positions ``arrays`` names, a list of ids, which ``build`` gets
    as a list and binds as one array parameter (``loyalty.db.InArray``: the stand-in is then
    replaced in the parameter's text). Where the rows need Django's own walk
    (``_reading``), each call builds the queryset again.
    """

    def __init__(
        self,
        model: type[models.Model],
        ids: int,
        build: Callable[..., QuerySet[Any, Any]],
        arrays: tuple[int, ...] = (),
    ) -> None:
        self.model = model
        self.markers = _MARKERS[:ids]
        self.stand_ins = [[m] if n in arrays else m for n, m in enumerate(self.markers)]
        self.build = build
        self.readings: dict[str, tuple[_Reading, list[_Binding | None]] | None] = {}

    def __call__(self, *ids: int | Sequence[int]) -> list[dict[str, Any]]:
        alias = router.db_for_read(self.model)
        if alias not in self.readings:
            self.readings[alias] = self._compiled(alias)
        compiled = self.readings[alias]
        if compiled is None:
            return list(self.build(*ids).using(alias))
        reading, bindings = compiled
        params = [
            constant if binding is None else binding(ids)
            for constant, binding in zip(reading.params, bindings, strict=True)
        ]
        return _read(alias, reading, params)

    def _compiled(self, alias: str) -> tuple[_Reading, list[_Binding | None]] | None:
        reading = _reading(self.build(*self.stand_ins).using(alias))
        if reading is None:
            return None
        return reading, [_binding(param, self.markers) for param in reading.params]


_Binding = Callable[[Arguments], Any]


def _binding(param: Any, markers: Sequence[int]) -> _Binding | None:
    """How a call's arguments give ``param``; None for a constant of the query."""
    if type(param) is int and param in markers:
        place = markers.index(param)
        return lambda ids: ids[place]
    if type(param) is str:
        texts = [(place, str(marker)) for place, marker in enumerate(markers)]
        found = [(place, text) for place, text in texts if text in param]
        if found:
            return lambda ids: _substituted(param, found, ids)
    return None


def _substituted(param: str, found: list[tuple[int, str]], ids: Arguments) -> str:
    """``param``'s text (an array's) with each stand-in's text replaced by its argument's."""
    for place, text in found:
        value = ids[place]
        numbers = [value] if isinstance(value, int) else list(value)
        # int.__repr__ refuses anything but an integer: nothing else reaches the array's text.
        param = param.replace(text, ",".join(map(int.__repr__, numbers)))
    return param
