"""The member import engine: CSV or JSON-lines rows into a club's members, batch by batch."""

from __future__ import annotations

import codecs
import csv
import gc
import hashlib
import json
import math
import re
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from functools import partial
from itertools import chain, islice
from pathlib import Path
from typing import Any, BinaryIO

from django.apps import apps
from django.db import connection, transaction
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from loyalty.db import in_retried_transaction
from loyalty.models import Club
from members.models import ChannelStatus, Member
from members.normalize import (
    NORMALIZERS,
    InvalidIdentifier,
    normalize_email,
    normalize_id,
    normalize_msisdn,
)
from members.services import (
    JSON_FIELDS,
    MEMBER_FIELDS,
    insert_members,
    json_text,
)
from members.signals import members_updated

MODES = ("upsert", "create", "update")
MATCH_BY = ("id", "email", "msisdn")
ARRAYS = ("replace", "append")


@dataclass(frozen=True)
class Reject:
    """A row that was not imported: its line, the row as given, and why."""

    line: int
    row: Mapping[str, Any] | str
    reason: str


@dataclass
class ImportReport:
    """Running counts of an import; ``elapsed`` is in seconds."""

    created: int = 0
    updated: int = 0
    unchanged: int = 0
    rejected: int = 0
    elapsed: float = 0.0

    @property
    def rows(self) -> int:
        return self.created + self.updated + self.unchanged + self.rejected

    @property
    def rate(self) -> float:
        """Rows per second."""
        return self.rows / self.elapsed if self.elapsed > 0 else 0.0


Item = tuple[int, "dict[str, Any] | CsvRecord | Reject"]


# Reading files ------------------------------------------------------------------------------

PROPERTY_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")
# Surrogates stand for bytes that are not UTF-8 (files are decoded with "surrogateescape");
# neither they nor NUL can be stored in PostgreSQL text.
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
_INTEGER = re.compile(r"[+-]?\d+")
_TRUE = frozenset({"true", "yes", "1"})
_FALSE = frozenset({"false", "no", "0"})
JSON_LINES_SUFFIXES = frozenset({".jsonl", ".ndjson", ".json"})
DELIMITERS = (",", ";", "\t")
# Member fields a CSV column may name; every other column is a property.
CSV_FIELDS = frozenset({"id", "email", "msisdn", "sms_status", "email_status", "push_status"})
CSV_ARRAYS = frozenset({"subunit_ids", "favorite_stores"})
# A row's member is the one with its email, else its msisdn, else its id (see ``_key``).
LOOKUP_ORDER = ("email", "msisdn", "id")
# The service's own: present in exports of members, ignored on import.
IGNORED_FIELDS = frozenset({"created_at", "updated_at"})
# Names a property cannot have: conditions would read the member field of the same name.
RESERVED_PROPERTIES = CSV_FIELDS | CSV_ARRAYS | IGNORED_FIELDS | {"members_group_ids"}


class FileRow(dict[str, Any]):
    """A row read from a file: ``text`` is its original text, for the reject report and
    its fingerprint, with ``header``, the file's header line (empty in JSON lines)."""

    __slots__ = ("header", "text")
    text: str
    header: str


def _unstorable(text: str) -> str:
    return "contains a NUL character" if "\x00" in text else "is not valid UTF-8"


def _check_text(value: Any) -> None:
    """Raise ``ValueError`` if a string in the decoded JSON ``value`` cannot be stored."""
    if isinstance(value, str):
        if _UNSTORABLE.search(value):
            raise ValueError(f"a string {_unstorable(value)}")
    elif isinstance(value, dict):
        for key, item in value.items():
            _check_text(key)
            _check_text(item)
    elif isinstance(value, list):
        for item in value:
            _check_text(item)


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _finite(text: str) -> float:
    number = float(text)
    if not math.isfinite(number):
        raise ValueError(f"{text} is too large")
    return number


def _loads(text: str) -> Any:
    """Decode JSON that the databases can store: finite numbers, no NUL, no lone surrogates."""
    try:
        value = json.loads(text, parse_constant=_no_constant, parse_float=_finite)
        if "\\u" in text:  # escapes can decode to NUL or to half of a surrogate pair
            _check_text(value)
    except RecursionError:
        raise ValueError("not valid JSON: nested too deeply") from None
    except ValueError as exc:
        raise ValueError(f"not valid JSON: {exc}") from None
    return value


def _split(cell: str) -> list[Any]:
    """An array cell: a JSON array, or items separated by ``|``."""
    if cell.startswith("["):
        return list(_loads(cell))
    return [item.strip() for item in cell.split("|") if item.strip()]


def _number(cell: str) -> int | float:
    if _INTEGER.fullmatch(cell):
        return int(cell)
    try:
        return _finite(cell)
    except ValueError:
        raise ValueError(f"{cell!r} is not a number") from None


def _boolean(cell: str) -> bool:
    lowered = cell.lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ValueError(f"{cell!r} is not one of true, false, yes, no, 1, 0")


CONVERTERS: dict[str, Callable[[str], Any] | None] = {
    "string": None,
    "number": _number,
    "boolean": _boolean,
    "json": _loads,
}
FIELD, PROPERTY, CONSENT = "field", "property", "consent"


@dataclass(frozen=True)
class Column:
    """What a CSV column holds: ``kind`` (field, property or consent), its key, its converter."""

    index: int
    title: str
    kind: str
    key: str
    convert: Callable[[str], Any] | None


def _column(index: int, title: str) -> Column | None:
    """The column a header cell names, None for an ignored one; raise ``ValueError``."""
    lowered = title.lower()
    if lowered in CSV_FIELDS:
        return Column(index, title, FIELD, lowered, None)
    if lowered in CSV_ARRAYS:
        return Column(index, title, FIELD, lowered, _split)
    if lowered in IGNORED_FIELDS:
        return None
    kind, key, convert = PROPERTY, title, CONVERTERS["string"]
    if lowered.startswith("consents."):
        kind, key, convert = CONSENT, title[len("consents.") :], _boolean
    elif title.endswith("[]"):
        key, convert = title[:-2], _split
    elif ":" in title:
        key, _, type_ = title.partition(":")
        if type_ not in CONVERTERS:
            raise ValueError(f"column {title!r}: the type must be one of {', '.join(CONVERTERS)}")
        convert = CONVERTERS[type_]
    if not PROPERTY_NAME.fullmatch(key) or key.lower() in RESERVED_PROPERTIES:
        raise ValueError(
            f"column {title!r}: {key!r} is not a property name (a letter or _, then letters, "
            "digits or _, at most 63 in all, and not the name of a member field)"
        )
    return Column(index, title, kind, key, convert)


@dataclass(frozen=True)
class Layout:
    """Where a CSV file's columns go, grouped so that each row is built in a few tight loops."""

    width: int
    # The columns of email, msisdn and id, in the order a known row's member is found by.
    identifiers: tuple[tuple[str, int], ...]
    fields: tuple[tuple[int, str], ...]
    properties: tuple[tuple[int, str], ...]
    converted: tuple[Column, ...]


def _layout(titles: Sequence[str]) -> Layout:
    """Read the header; raise ``ValueError`` saying what is wrong with it."""
    columns: list[Column] = []
    taken: dict[tuple[str, str], str] = {}
    for index, raw in enumerate(titles):
        title = raw.strip()
        if not title:
            raise ValueError(f"column {index + 1} has no name")
        column = _column(index, title)
        if column is None:
            continue
        earlier = taken.setdefault((column.kind, column.key), title)
        if earlier is not title:
            raise ValueError(f"columns {earlier!r} and {title!r} name the same field")
        columns.append(column)
    plain = [c for c in columns if c.convert is None]
    given = {c.key: c.index for c in plain if c.kind == FIELD}
    return Layout(
        width=len(titles),
        identifiers=tuple((name, given[name]) for name in LOOKUP_ORDER if name in given),
        fields=tuple((c.index, c.key) for c in plain if c.kind == FIELD),
        properties=tuple((c.index, c.key) for c in plain if c.kind == PROPERTY),
        converted=tuple(c for c in columns if c.convert is not None),
    )


class RowReader(Iterator[Item]):
    """The rows of a CSV or JSON-lines file, read lazily, one line at a time.

    Yields ``(line, row)`` where ``row`` is a member-shaped dict (``FileRow``) or a
    ``Reject`` for a line that cannot be read. ``bytes_read`` of ``size`` measures progress.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.size = path.stat().st_size
        self.bytes_read = 0
        self._record: list[str] = []
        self._rows = self._read()

    def __next__(self) -> Item:
        return next(self._rows)

    def _lines(self, file: BinaryIO) -> Iterator[str]:
        for raw in file:
            self.bytes_read += len(raw)
            line = raw.decode("utf-8", "surrogateescape")
            self._record.append(line)
            yield line

    def _read(self) -> Iterator[Item]:
        with self.path.open("rb") as file:
            if file.read(len(codecs.BOM_UTF8)) == codecs.BOM_UTF8:
                self.bytes_read = len(codecs.BOM_UTF8)
            else:
                file.seek(0)
            lines = self._lines(file)
            skipped = 0
            for first in lines:
                if first.strip():
                    break
                skipped += 1
            else:
                return
            rows = chain([first], lines)
            if first.lstrip().startswith("{") or self.path.suffix.lower() in JSON_LINES_SUFFIXES:
                yield from self._json_lines(rows, skipped)
            else:
                yield from self._csv(rows, skipped, first)

    def _json_lines(self, lines: Iterable[str], skipped: int) -> Iterator[Item]:
        for number, line in enumerate(lines, start=skipped + 1):
            self._record.clear()
            text = line.rstrip("\r\n")
            if not text.strip():
                continue
            if _UNSTORABLE.search(text):
                yield number, Reject(number, text, f"the line {_unstorable(text)}")
                continue
            try:
                value = _loads(text)
            except ValueError as exc:
                yield number, Reject(number, text, str(exc))
                continue
            if not isinstance(value, dict):
                yield number, Reject(number, text, "not a JSON object")
                continue
            row = FileRow(value)
            row.text = text
            row.header = ""
            yield number, row

    def _csv(self, lines: Iterable[str], skipped: int, header: str) -> Iterator[Item]:
        delimiter = max(DELIMITERS, key=header.count)
        reader = csv.reader(lines, delimiter=delimiter, strict=True)
        layout, header_error = Layout(0, (), (), (), ()), ""
        try:
            layout = _layout(next(reader))
        except (csv.Error, ValueError) as exc:
            header_error = f"the header (line {skipped + 1}) is not valid: {exc}"
        # The whole header record: a quoted title may span lines.
        header = "".join(self._record)
        self._record.clear()
        previous = reader.line_num
        while True:
            try:
                cells = next(reader)
                error = ""
            except StopIteration:
                return
            except csv.Error as exc:
                cells, error = [], f"not valid CSV: {exc}"
            number = skipped + previous + 1
            previous = reader.line_num
            text = "".join(self._record).rstrip("\r\n")
            self._record.clear()
            if not error and not any(cell.strip() for cell in cells):
                continue
            if _UNSTORABLE.search(text):
                error = f"the row {_unstorable(text)}"
            error = error or header_error
            if not error and len(cells) != layout.width:
                error = f"the row has {len(cells)} columns, the header {layout.width}"
            if error:
                yield number, Reject(number, text, error)
                continue
            yield number, CsvRecord(layout, cells, text, header)


class CsvRecord:
    """A CSV record as read; made into a ``FileRow`` only if it is parsed (a row a re-import
    knows already is not)."""

    __slots__ = ("cells", "header", "layout", "text")

    def __init__(self, layout: Layout, cells: list[str], text: str, header: str) -> None:
        self.layout = layout
        self.cells = cells
        self.text = text
        self.header = header

    def row(self) -> FileRow:
        """The member-shaped row; raise ``ValueError`` for a cell that does not convert."""
        row = _csv_row(self.layout, self.cells)
        row.text = self.text
        row.header = self.header
        return row


def _csv_row(layout: Layout, cells: Sequence[str]) -> FileRow:
    """A member-shaped row from the cells; blank cells are left out (not given)."""
    row = FileRow()
    for index, key in layout.fields:
        cell = cells[index].strip()
        if cell:
            row[key] = cell
    properties: dict[str, Any] = {}
    for index, key in layout.properties:
        cell = cells[index].strip()
        if cell:
            properties[key] = cell
    consents: dict[str, Any] = {}
    targets = {FIELD: row, PROPERTY: properties, CONSENT: consents}
    for column in layout.converted:
        cell = cells[column.index].strip()
        if cell:
            try:
                targets[column.kind][column.key] = column.convert(cell)  # type: ignore[misc]
            except ValueError as exc:
                raise ValueError(f"{column.title}: {exc}") from None
    if properties:
        row["properties"] = properties
    if consents:
        row["consents"] = consents
    return row


def read_rows(path: Path) -> RowReader:
    """Read a CSV (comma, semicolon or tab; UTF-8 with or without BOM) or JSON-lines file.

    JSON lines when the first line starts with ``{`` or the name ends in .jsonl, .ndjson
    or .json; CSV otherwise. The file is read lazily and never held whole.
    """
    return RowReader(path)


# Rows ---------------------------------------------------------------------------------------

ROW_FIELDS = frozenset({"id", *MEMBER_FIELDS})
ROW_KEYS = ROW_FIELDS | IGNORED_FIELDS
STATUS_FIELDS = ("sms_status", "email_status", "push_status")
STATUSES = tuple(ChannelStatus.values)


class Invalid(Exception):
    """A row that cannot be imported; the message is the reason."""


@dataclass(slots=True)
class Row:
    """A valid row, normalised: only what it gives (None: not given)."""

    line: int
    source: Mapping[str, Any] | str
    id: int | None
    email: str | None
    msisdn: str | None
    # A None value removes the key (JSON merge patch).
    properties: dict[str, Any]
    # name -> (status, updated_at or None), or None to remove the consent.
    consents: dict[str, tuple[bool, str | None] | None]
    statuses: dict[str, str]
    subunit_ids: list[int] | None
    favorite_stores: list[int] | None
    # The file row's fingerprint, stored with the member it creates or changes.
    fingerprint: str | None = None


@dataclass(slots=True)
class Known:
    """A file row its member's fingerprint shows was imported as it is: unchanged, unparsed."""

    line: int
    member_id: int
    # The line of this import that took the member already, if one did.
    seen: int | None
    source: str


def _identifier(row: Mapping[str, Any], name: str, normalize: Callable[[Any], Any]) -> Any:
    value = row.get(name)
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    try:
        return normalize(value)
    except InvalidIdentifier as exc:
        raise Invalid(f"{name} {value!r} {exc}") from None


def _status(name: str, value: Any) -> str:
    status = value.strip().lower() if isinstance(value, str) else value
    if status not in STATUSES:
        raise Invalid(f"{name} {value!r} is not one of {', '.join(STATUSES)}")
    return str(status)


def _ids(row: Mapping[str, Any], name: str) -> list[int] | None:
    value = row.get(name)
    if value is None:
        return None
    if not isinstance(value, list):
        raise Invalid(f"{name} must be a list of positive integers")
    try:
        return [normalize_id(item) for item in value]
    except InvalidIdentifier:
        raise Invalid(f"{name} must be a list of positive integers") from None


def _consent(name: str, value: Any) -> tuple[bool, str | None] | None:
    if value is True or value is False:
        return value, None
    if value is None:
        return None
    if (
        isinstance(value, dict)
        and isinstance(value.get("status"), bool)
        and value.keys() <= {"status", "updated_at"}
    ):
        when = value.get("updated_at")
        if when is not None:
            try:
                valid = isinstance(when, str) and parse_datetime(when) is not None
            except ValueError:
                valid = False
            if not valid:
                raise Invalid(f"consents.{name}.updated_at must be an ISO 8601 date and time")
        return value["status"], when
    raise Invalid(
        f'consents.{name} must be true, false or {{"status": true or false, "updated_at": ...}}'
    )


def _check_json(value: Any, where: str) -> None:
    """Refuse what JSON cannot carry (rows given by code rather than read from a file)."""
    if value is None or isinstance(value, bool | int | str):
        if isinstance(value, str) and _UNSTORABLE.search(value):
            raise Invalid(f"{where}: a string {_unstorable(value)}")
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise Invalid(f"{where}: {value} is not a JSON number")
    elif isinstance(value, list):
        for item in value:
            _check_json(item, where)
    elif isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str) or _UNSTORABLE.search(key):
                raise Invalid(f"{where}: {key!r} is not a valid key")
            _check_json(item, where)
    else:
        raise Invalid(f"{where}: {type(value).__name__} is not a JSON value")


def parse_row(line: int, row: Mapping[str, Any]) -> Row:
    """Validate and normalise one member-shaped row like the services do; raise ``Invalid``."""
    if not ROW_KEYS.issuperset(row):
        unknown = row.keys() - ROW_KEYS
        names = ", ".join(repr(name) for name in sorted(map(str, unknown)))
        raise Invalid(f"unknown field {names} (properties go in the properties object)")
    if not isinstance(row, FileRow):
        _check_json(dict(row), "the row")
    id_ = _identifier(row, "id", normalize_id)
    email = _identifier(row, "email", normalize_email)
    msisdn = _identifier(row, "msisdn", normalize_msisdn)
    if id_ is None and email is None and msisdn is None:
        raise Invalid("the row has no email, msisdn or id")
    properties = row.get("properties")
    if properties is None:
        properties = {}
    elif not isinstance(properties, dict):
        raise Invalid("properties must be a JSON object")
    consents = row.get("consents")
    if consents is None:
        consents = {}
    elif not isinstance(consents, dict):
        raise Invalid("consents must be a JSON object")
    statuses = {}
    for name in STATUS_FIELDS:
        value = row.get(name)
        if value is not None and value != "":
            statuses[name] = _status(name, value)
    return Row(
        line=line,
        source=getattr(row, "text", row),
        id=id_,
        email=email,
        msisdn=msisdn,
        properties=properties,
        consents={name: _consent(name, value) for name, value in consents.items()},
        statuses=statuses,
        subunit_ids=_ids(row, "subunit_ids"),
        favorite_stores=_ids(row, "favorite_stores"),
    )


_MISSING = object()
_SCALARS = frozenset({str, int, float, bool, type(None)})
_NUMBERS = frozenset({int, float})


def same(a: Any, b: Any) -> bool:
    """JSON equality: ``True`` is not ``1``, but ``1`` is ``1.0`` (jsonb may store either)."""
    kind = type(a)
    if kind is type(b) and kind in _SCALARS:
        return bool(a == b)
    if kind is dict:
        return (
            type(b) is dict
            and a.keys() == b.keys()
            and all(same(value, b[key]) for key, value in a.items())
        )
    if kind is list:
        return type(b) is list and len(a) == len(b) and all(map(same, a, b))
    return kind in _NUMBERS and type(b) in _NUMBERS and bool(a == b)


def _appended(stored: list[Any], given: list[Any]) -> list[Any]:
    result = list(stored)
    for item in given:
        if not any(same(item, old) for old in result):
            result.append(item)
    return result


# The database -------------------------------------------------------------------------------

MEMBER_TABLE = Member._meta.db_table
# Column order of the rows read and written below.
STATE_COLUMNS = MEMBER_FIELDS
SEEN_TABLE = "members_import_seen"
CHANGES_TABLE = "members_import_changes"
# Part of every fingerprint: bump it when a change of parsing, normalising or merging could
# make a row do something else than before, so that re-imports parse every row again.
FINGERPRINT_VERSION = 1
# The statuses of a new member whose row does not give them: the model's defaults.
NEW_MEMBER = {name: Member._meta.get_field(name).default for name in STATUS_FIELDS}


# The club as a value the PostgreSQL planner cannot see. While an import fills a new club,
# the statistics still say the club has no members, and with the plain value the planner
# probed "(club_id, id)" for club_id alone, reading the whole club for every email: the
# import slowed to a crawl at 300,000 members. Unseen, the club is costed as an average one
# and the lookups go to the index of the column they compare.
CLUB = "(SELECT %s::bigint)"


# An import that has created this many members refreshes the planner's statistics, and
# again each time it has created four times as many as at the last refresh.
ANALYZE_AFTER = 10_000


def _refresh_statistics() -> None:
    """Re-count, for the PostgreSQL planner, how many members and memberships each club has.

    While an import grows a club, the statistics say it is as small as it was: statements
    of a batch that filter by club (the groups' refresh of the batch's members too) then
    read the whole club, every batch, and the import slows down as the club grows. Only the
    club and group columns are sampled: about a second on a table of two million members.
    """
    # Looked up by name: members must not import the groups app, which depends on it.
    membership = apps.get_model("groups", "Membership")._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(f"ANALYZE {MEMBER_TABLE} (club_id)")
        cursor.execute(f"ANALYZE {membership} (club_id, group_id)")


def _no_jit() -> None:
    """Turn PostgreSQL's JIT compiler off for the rest of the batch's transaction.

    Its statements reach thousands of rows by index, never enough for compiled code to
    win back its compile time: 8 of the 40 ms of a batch's lookup, and 7% of a re-import.
    """
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SET LOCAL jit = off")


def _temp(table: str) -> str:
    return f"pg_temp.{table}" if connection.vendor == "postgresql" else f"temp.{table}"


def _create_scratch() -> None:
    _drop_scratch()
    with connection.cursor() as cursor:
        # Which member each imported row took, so that a later duplicate is caught even in
        # another batch; kept in the database so memory stays flat whatever the file size.
        cursor.execute(
            f"CREATE TEMP TABLE {SEEN_TABLE} (member_id bigint PRIMARY KEY, line bigint NOT NULL)"
        )
        if connection.vendor == "postgresql":
            # A batch's changed members, copied in for one UPDATE ... FROM.
            columns = ", ".join(
                f"{c} {'jsonb' if c in JSON_FIELDS else 'text'}" for c in STATE_COLUMNS
            )
            cursor.execute(
                f"CREATE TEMP TABLE {CHANGES_TABLE} (id bigint, {columns}, import_fingerprint text)"
            )


def _drop_scratch() -> None:
    with connection.cursor() as cursor:
        for table in (SEEN_TABLE, CHANGES_TABLE):
            cursor.execute(f"DROP TABLE IF EXISTS {_temp(table)}")


@contextmanager
def _scratch(dry_run: bool) -> Iterator[None]:
    """Temporary tables for one import; in a dry run, everything is rolled back at the end."""
    with transaction.atomic() if dry_run else nullcontext():
        _create_scratch()
        try:
            yield
        finally:
            _drop_scratch()
        if dry_run:
            transaction.set_rollback(True)


Stored = tuple[Any, ...]  # id, then STATE_COLUMNS with JSON as text, then the line that took it


def _stored(club: Club, emails: list[str], msisdns: list[str], ids: list[int]) -> list[Stored]:
    """The club's members having any of these identifiers, and the line that took each.

    On PostgreSQL every identifier is one index probe (a LATERAL subquery with LIMIT is
    never turned into a join that scans the club), on the index of its column (see
    ``CLUB``). The rows are locked until the batch commits, so that a concurrent change is
    not overwritten by a merge computed before it: in id order, as other writers lock
    members, and without the key lock of FOR UPDATE, which the foreign-key checks of
    concurrent membership inserts would wait on (a deadlock with a bulk add).
    """
    columns = ", ".join(f"m.{c}" for c in ("id", *STATE_COLUMNS))
    seen = _temp(SEEN_TABLE)
    # Emails and msisdns go to PostgreSQL as one string split there: quoting 5,000 array
    # elements in Python took longer than the lookup. No valid one contains a line break.
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            by = (
                "SELECT f.id FROM unnest(string_to_array(%s, E'\\n')) AS k(value) "
                "CROSS JOIN LATERAL (SELECT id "
                f"FROM {MEMBER_TABLE} WHERE club_id = {CLUB} AND {{}} = k.value LIMIT 1) AS f"
            )
            cursor.execute(
                f"WITH ids AS ({by.format('email')} UNION {by.format('msisdn')} "
                "UNION SELECT unnest(%s::bigint[])) "
                f"SELECT {columns}, s.line FROM (SELECT id FROM ids ORDER BY id) AS ids "
                f"CROSS JOIN LATERAL (SELECT * FROM {MEMBER_TABLE} WHERE club_id = {CLUB} "
                "AND id = ids.id LIMIT 1 FOR NO KEY UPDATE) AS m "
                f"LEFT JOIN LATERAL (SELECT line FROM {seen} WHERE member_id = m.id LIMIT 1) "
                "AS s ON true",
                ["\n".join(emails), club.pk, "\n".join(msisdns), club.pk, ids, club.pk],
            )
        else:
            by = (
                f"SELECT id FROM {MEMBER_TABLE} WHERE club_id = %s "
                "AND {} IN (SELECT value FROM json_each(%s))"
            )
            cursor.execute(
                f"SELECT {columns}, s.line FROM {MEMBER_TABLE} AS m "
                f"LEFT JOIN {seen} AS s ON s.member_id = m.id WHERE m.club_id = %s AND m.id IN "
                f"({by.format('email')} UNION {by.format('msisdn')} "
                "UNION SELECT value FROM json_each(%s))",
                [
                    club.pk,
                    club.pk,
                    json.dumps(emails),
                    club.pk,
                    json.dumps(msisdns),
                    json.dumps(ids),
                ],
            )
        return cursor.fetchall()


def _remember(seen: list[tuple[int, int]]) -> None:
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            # One "id line" string split there: cheaper than dumping two bigint arrays.
            cursor.execute(
                f"INSERT INTO {_temp(SEEN_TABLE)} (member_id, line) "
                "SELECT split_part(p, ' ', 1)::bigint, split_part(p, ' ', 2)::bigint "
                "FROM unnest(string_to_array(%s, E'\\n')) AS p",
                ["\n".join(f"{pk} {line}" for pk, line in seen)],
            )
        else:
            cursor.execute(
                f"INSERT INTO {_temp(SEEN_TABLE)} (member_id, line) "
                "SELECT value ->> 0, value ->> 1 FROM json_each(%s)",
                [json.dumps(seen)],
            )


def _update(club: Club, changes: list[Stored], fingerprints: list[str | None]) -> None:
    """Write the changed members (id, then STATE_COLUMNS with JSON as text) in one UPDATE,
    each with the fingerprint of the row that changed it."""
    columns = (*STATE_COLUMNS, "import_fingerprint")
    assignments = ", ".join(f"{c} = c.{c}" for c in columns)
    now = timezone.now()
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            table = _temp(CHANGES_TABLE)
            cursor.execute(f"TRUNCATE {table}")
            with cursor.cursor.copy(f"COPY {table} (id, {', '.join(columns)}) FROM STDIN") as copy:
                for change, fingerprint in zip(changes, fingerprints, strict=True):
                    copy.write_row((*change, fingerprint))
            # Statistics first: joined unanalysed, a temporary table can get a bad plan.
            cursor.execute(f"ANALYZE {table}")
            cursor.execute(
                f"UPDATE {MEMBER_TABLE} AS m SET {assignments}, updated_at = %s "
                f"FROM {table} AS c WHERE m.club_id = {CLUB} AND m.id = c.id",
                [now, club.pk],
            )
            return
        # "+club_id": not through the club's index, which made SQLite read the whole club
        # and, for each member, the whole batch; the batch's ids lead instead.
        picks = ", ".join(
            f"value ->> {index} AS {column}" for index, column in enumerate(("id", *columns))
        )
        rows = [
            (*change, fingerprint)
            for change, fingerprint in zip(changes, fingerprints, strict=True)
        ]
        cursor.execute(
            f"UPDATE {MEMBER_TABLE} SET {assignments}, updated_at = %s "
            f"FROM (SELECT {picks} FROM json_each(%s)) AS c "
            f"WHERE +{MEMBER_TABLE}.club_id = %s AND {MEMBER_TABLE}.id = c.id",
            [connection.ops.adapt_datetimefield_value(now), json.dumps(rows), club.pk],
        )


def _confirm(club: Club, confirmed: list[tuple[int, str]]) -> None:
    """Give unchanged members the fingerprint of their row, where they hold another or none.

    Nothing a user sees changes (not ``updated_at``), and a member that already holds it is
    not written: so the next import of the same file knows the row, also for a member that
    came from elsewhere or from an import under older rules.
    """
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                f"UPDATE {MEMBER_TABLE} AS m SET import_fingerprint = c.fingerprint FROM "
                "(SELECT split_part(p, ' ', 1)::bigint AS id, split_part(p, ' ', 2) AS fingerprint "
                "FROM unnest(string_to_array(%s, E'\\n')) AS p) AS c "
                f"WHERE m.club_id = {CLUB} AND m.id = c.id "
                "AND m.import_fingerprint IS DISTINCT FROM c.fingerprint",
                ["\n".join(f"{pk} {fingerprint}" for pk, fingerprint in confirmed), club.pk],
            )
            return
        cursor.execute(
            f"UPDATE {MEMBER_TABLE} SET import_fingerprint = c.fingerprint "
            "FROM (SELECT value ->> 0 AS id, value ->> 1 AS fingerprint FROM json_each(%s)) AS c "
            f"WHERE +{MEMBER_TABLE}.club_id = %s AND {MEMBER_TABLE}.id = c.id "
            f"AND {MEMBER_TABLE}.import_fingerprint IS NOT c.fingerprint",
            [json.dumps(confirmed), club.pk],
        )


Keyed = tuple[str, str, str]  # a row's fingerprint, the identifier to look it up by, its value


def _key(row: FileRow | CsvRecord) -> tuple[str, str] | None:
    """Where to look for the member holding the row's fingerprint: by the row's email,
    else msisdn, else id, as text; None where the row gives none usable.

    A member holds a row's fingerprint only while it holds what the row gave (any other
    write clears it), so it has this identifier. The lookup also compares the fingerprint:
    a looser key than the parse's (an email only lower-cased) can miss, sending the row to
    the full parse, but never finds another member.
    """
    if isinstance(row, CsvRecord):
        given: Iterable[tuple[str, Any]] = (
            (name, row.cells[index]) for name, index in row.layout.identifiers
        )
    else:
        given = ((name, row.get(name)) for name in LOOKUP_ORDER)
    for name, value in given:
        if value is None or (isinstance(value, str) and not value.strip()):
            continue
        try:
            key = value.strip().lower() if name == "email" else str(NORMALIZERS[name](value))
        except (InvalidIdentifier, AttributeError):
            return None
        return None if "\n" in key else (name, key)
    return None


def _known(club: Club, keyed: list[Keyed]) -> dict[str, tuple[int, int | None]]:
    """The club's members holding these rows' fingerprints, each found by the row's email,
    msisdn or id: fingerprint -> (id, line that took it).

    Through the unique index of each identifier: no index of the fingerprints to keep up.
    Not locked, unlike the members ``_stored`` reads: a known row writes nothing to its
    member (a ``--group`` add locks it as every membership write does), so a concurrent
    change of it is simply ordered after this import's row.
    """
    seen = _temp(SEEN_TABLE)
    by_name: dict[str, list[str]] = {}
    # Sorted, so that the lookups walk each index in order, each near the last.
    for fingerprint, name, value in sorted(keyed, key=lambda k: (k[1], k[2])):
        by_name.setdefault(name, []).append(f"{fingerprint} {value}")
    queries: list[str] = []
    params: list[Any] = []
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            for name, pairs in by_name.items():
                value = "k.value::bigint" if name == "id" else "k.value"
                # One string split there, as in ``_stored``: cheaper than arrays. Fingerprints
                # are 32 hex digits, and no valid identifier holds a line break.
                queries.append(
                    "SELECT k.fp, m.id, s.line FROM (SELECT left(p, 32) AS fp, "
                    "substr(p, 34) AS value FROM unnest(string_to_array(%s, E'\\n')) AS p) AS k "
                    f"CROSS JOIN LATERAL (SELECT id FROM {MEMBER_TABLE} WHERE club_id = {CLUB} "
                    f"AND {name} = {value} AND import_fingerprint = k.fp LIMIT 1) AS m "
                    f"LEFT JOIN LATERAL (SELECT line FROM {seen} WHERE member_id = m.id LIMIT 1) "
                    "AS s ON true"
                )
                params += ["\n".join(pairs), club.pk]
        else:
            for name, pairs in by_name.items():
                value = (
                    "CAST(substr(j.value, 34) AS INTEGER)"
                    if name == "id"
                    else "substr(j.value, 34)"
                )
                # CROSS JOIN: SQLite keeps the rows outermost and probes the members' index.
                queries.append(
                    f"SELECT substr(j.value, 1, 32), m.id, s.line FROM json_each(%s) AS j "
                    f"CROSS JOIN {MEMBER_TABLE} AS m LEFT JOIN {seen} AS s ON s.member_id = m.id "
                    f"WHERE m.club_id = %s AND m.{name} = {value} "
                    "AND m.import_fingerprint = substr(j.value, 1, 32)"
                )
                params += [json.dumps(pairs), club.pk]
        if not queries:
            return {}
        cursor.execute(" UNION ALL ".join(queries), params)
        return {fp: (pk, line) for fp, pk, line in cursor.fetchall()}


# The engine ---------------------------------------------------------------------------------


class _New:
    """A member the batch creates, before it has an id."""

    __slots__ = ("index",)

    def __init__(self, index: int) -> None:
        self.index = index


Owner = int | _New


@dataclass
class _Batch:
    """What one batch writes, and what it reports once committed."""

    # ``insert_members`` rows.
    creates: list[list[Any]]
    changes: list[Stored]
    # The fingerprint of the row behind each change.
    fingerprints: list[str | None]
    # Unchanged members and the fingerprint of their row, to hold from now on.
    confirmed: list[tuple[int, str]]
    unchanged: list[int]
    # In file order: a member id, or the index of a created member.
    imported: list[int | _New]
    seen: list[tuple[int | _New, int]]
    rejects: list[Reject]


class _Importer:
    def __init__(
        self, *, club: Club, mode: str, match_by: str | None, arrays: str, source: str, actor: str
    ) -> None:
        self.club = club
        self.mode = mode
        self.match_by = match_by
        self.append = arrays == "append"
        self.source = source
        self.actor = actor
        self.now_iso = timezone.now().isoformat()
        # A row's effect depends on the options too, and on the rules of this code.
        self.salt: bytes | None = f"{FINGERPRINT_VERSION}|{mode}|{match_by}|{arrays}|".encode()
        if mode == "create" or match_by == "id":
            # "create" refuses existing members, and by id an upsert creates the rows
            # without one: a known row would not be unchanged there.
            self.salt = None
        self._prefixes: dict[str, bytes] = {}
        # A club none of whose members came from a file row (the first import into it) has
        # nothing to look up; what this import creates is caught as duplicates anyway.
        self.club_has_fingerprints = (
            self.salt is not None
            and Member.objects.filter(club=club, import_fingerprint__isnull=False).exists()
        )

    # Fingerprints ---------------------------------------------------------------------------

    def _fingerprint(self, row: FileRow | CsvRecord) -> str:
        """The row's text under its header and this import's options, hashed."""
        assert self.salt is not None
        prefix = self._prefixes.get(row.header)
        if prefix is None:
            prefix = self._prefixes[row.header] = self.salt + row.header.encode() + b"\n"
        text = row.text.encode("utf-8", "surrogateescape")
        return hashlib.blake2b(prefix + text, digest_size=16).hexdigest()

    def prepare(self, items: list[Item]) -> list[tuple[int, Known | Row | Reject]]:
        """Parse the batch's rows, but for those a member's fingerprint shows are unchanged."""
        # By position: rows given by code need not have distinct line numbers.
        fingerprints: dict[int, str] = {}
        keyed: list[Keyed] = []
        if self.salt is not None:
            for index, (_, row) in enumerate(items):
                if isinstance(row, FileRow | CsvRecord):
                    fingerprints[index] = self._fingerprint(row)
                    key = _key(row) if self.club_has_fingerprints else None
                    if key is not None:
                        keyed.append((fingerprints[index], *key))
        known = _known(self.club, keyed) if keyed else {}
        prepared: list[tuple[int, Known | Row | Reject]] = []
        for index, (line, row) in enumerate(items):
            fingerprint = fingerprints.get(index)
            hit = known.get(fingerprint) if fingerprint is not None else None
            if hit is not None:
                prepared.append((line, Known(line, hit[0], hit[1], getattr(row, "text", ""))))
                continue
            item = _parse_item(line, row)
            if isinstance(item, Row):
                item.fingerprint = fingerprint
            prepared.append((line, item))
        return prepared

    # Classification -----------------------------------------------------------------------

    def classify(self, items: list[tuple[int, Row | Reject]]) -> tuple[_Batch, int]:
        """Decide each row's fate, in file order, as if the rows before it were written.

        Return the batch and how many items it took: a row that takes an email or msisdn
        another member gives up earlier in the same batch waits for the next batch, because
        one UPDATE statement checks uniqueness row by row, in no particular order.
        """
        rows = [item for _, item in items if isinstance(item, Row)]
        stored = (
            []
            if not rows
            else _stored(
                self.club,
                [row.email for row in rows if row.email],
                [row.msisdn for row in rows if row.msisdn],
                [row.id for row in rows if row.id],
            )
        )
        members = {member[0]: member[:-1] for member in stored}
        by_email: dict[str, Owner | None] = {m[1]: m[0] for m in stored if m[1] is not None}
        by_msisdn: dict[str, Owner | None] = {m[2]: m[0] for m in stored if m[2] is not None}
        claimed: dict[Owner, int] = {m[0]: m[-1] for m in stored if m[-1] is not None}
        released: set[tuple[str, str]] = set()
        for _, item in items:
            if isinstance(item, Known) and item.seen is not None:
                claimed.setdefault(item.member_id, item.seen)
        batch = _Batch([], [], [], [], [], [], [], [])
        for taken, (line, item) in enumerate(items):
            if isinstance(item, Reject):
                batch.rejects.append(item)
                continue
            if isinstance(item, Known):
                if item.member_id in claimed:
                    already = claimed[item.member_id]
                    reason = f"duplicate: line {already} already imported this member"
                    batch.rejects.append(Reject(line, item.source, reason))
                    continue
                batch.unchanged.append(item.member_id)
                claimed[item.member_id] = line
                batch.imported.append(item.member_id)
                batch.seen.append((item.member_id, line))
                continue
            try:
                owner = self._owner(item, members, by_email, by_msisdn, claimed)
                if owner is None:
                    owner = _New(len(batch.creates))
                    batch.creates.append(self._new_member(item))
                    for field, index in (("email", by_email), ("msisdn", by_msisdn)):
                        if getattr(item, field) is not None:
                            index[getattr(item, field)] = owner
                else:
                    member = members[owner]  # type: ignore[index]
                    for field, value, old in (
                        ("email", item.email, member[1]),
                        ("msisdn", item.msisdn, member[2]),
                    ):
                        if value is not None and value != old and (field, value) in released:
                            return batch, taken
                    change = self._merge(item, member)
                    if change is None:
                        batch.unchanged.append(member[0])
                        if item.fingerprint is not None:
                            batch.confirmed.append((member[0], item.fingerprint))
                    else:
                        batch.changes.append(change)
                        batch.fingerprints.append(item.fingerprint)
                        for field, new, old, index in (
                            ("email", change[1], member[1], by_email),
                            ("msisdn", change[2], member[2], by_msisdn),
                        ):
                            if new != old:
                                if old is not None:
                                    index[old] = None
                                    released.add((field, old))
                                index[new] = owner
            except Invalid as exc:
                batch.rejects.append(Reject(line, item.source, str(exc)))
                continue
            claimed[owner] = line
            batch.imported.append(owner)
            batch.seen.append((owner, line))
        return batch, len(items)

    def _owner(
        self,
        row: Row,
        members: dict[int, Stored],
        by_email: dict[str, Owner | None],
        by_msisdn: dict[str, Owner | None],
        claimed: dict[Owner, int],
    ) -> int | None:
        """The existing member the row updates, None for a new one; raise ``Invalid``."""
        if row.id is not None and row.id not in members:
            raise Invalid(f"no member with id {row.id}")
        found = [
            (name, owner)
            for name, owner in (
                ("email", None if row.email is None else by_email.get(row.email)),
                ("msisdn", None if row.msisdn is None else by_msisdn.get(row.msisdn)),
                ("id", row.id),
            )
            if owner is not None
        ]
        for _, owner in found:
            if owner in claimed:
                raise Invalid(f"duplicate: line {claimed[owner]} already imported this member")
        if self.match_by is None:
            field = found[0][0] if found else "email"
        else:
            field = self.match_by
            # Ids are the service's to give: by id, an upsert creates the rows without one.
            if getattr(row, field) is None and not (field == "id" and self.mode == "upsert"):
                raise Invalid(f"the row has no {field} to match by")
        target = next((owner for name, owner in found if name == field), None)
        for name, owner in found:
            if owner != target:
                if target is not None:
                    mine = f"the {field} to member {target}"
                elif getattr(row, field) is None:
                    mine = f"the row has no {field}"
                else:
                    mine = f"no member has this {field}"
                raise Invalid(f"the {name} belongs to member {owner}, but {mine}")
        if target is None:
            if self.mode == "update":
                label = field if self.match_by else "email or msisdn"
                raise Invalid(f"no member with this {label}")
            return None
        if self.mode == "create":
            raise Invalid(f"a member with this {field} already exists (id {target})")
        assert isinstance(target, int)
        return target

    # Values -------------------------------------------------------------------------------

    def _consent(self, given: tuple[bool, str | None]) -> dict[str, Any]:
        return {"status": given[0], "updated_at": given[1] or self.now_iso}

    def _new_member(self, row: Row) -> list[Any]:
        """The row as ``insert_members`` takes a new member."""
        properties = row.properties
        if None in properties.values():
            properties = {key: value for key, value in properties.items() if value is not None}
        consents = {
            name: self._consent(given) for name, given in row.consents.items() if given is not None
        }
        statuses = row.statuses
        return [
            None,
            None,
            row.email,
            row.msisdn,
            json_text(properties),
            json_text(consents),
            *(statuses.get(name, NEW_MEMBER[name]) for name in STATUS_FIELDS),
            json_text(row.subunit_ids or []),
            json_text(row.favorite_stores or []),
            row.fingerprint,
        ]

    def _merged_properties(
        self, stored: dict[str, Any], given: dict[str, Any]
    ) -> dict[str, Any] | None:
        merged: dict[str, Any] | None = None
        for key, value in given.items():
            old = stored.get(key, _MISSING)
            if value is None:
                if old is not _MISSING:
                    merged = merged if merged is not None else dict(stored)
                    del merged[key]
                continue
            if self.append and isinstance(value, list) and isinstance(old, list):
                value = _appended(old, value)
            if old is _MISSING or not same(old, value):
                merged = merged if merged is not None else dict(stored)
                merged[key] = value
        return merged

    def _merged_consents(
        self, stored: dict[str, Any], given: dict[str, tuple[bool, str | None] | None]
    ) -> dict[str, Any] | None:
        merged: dict[str, Any] | None = None
        for name, consent in given.items():
            old = stored.get(name, _MISSING)
            if consent is None:
                if old is not _MISSING:
                    merged = merged if merged is not None else dict(stored)
                    del merged[name]
                continue
            status, when = consent
            # A consent given again without a time keeps the time it was given first.
            if (
                isinstance(old, dict)
                and old.get("status") is status
                and (when is None or old.get("updated_at") == when)
            ):
                continue
            merged = merged if merged is not None else dict(stored)
            merged[name] = self._consent(consent)
        return merged

    def _merged_ids(self, stored_json: str, given: list[int] | None) -> str | None:
        if given is None:
            return None
        if not self.append and json.dumps(given) == stored_json:
            # Both databases give back an array of integers as json.dumps writes it.
            return None
        stored = json.loads(stored_json)
        value = _appended(stored, given) if self.append else given
        return None if same(stored, value) else json.dumps(value)

    def _merge(self, row: Row, member: Stored) -> Stored | None:
        """The member's new state (JSON as text), or None when the row changes nothing."""
        new = list(member)
        if row.email is not None:
            new[1] = row.email
        if row.msisdn is not None:
            new[2] = row.msisdn
        if row.properties:
            merged = self._merged_properties(json.loads(member[3]), row.properties)
            if merged is not None:
                new[3] = json.dumps(merged)
        if row.consents:
            merged = self._merged_consents(json.loads(member[4]), row.consents)
            if merged is not None:
                new[4] = json.dumps(merged)
        for index, name in enumerate(STATUS_FIELDS, start=5):
            if name in row.statuses:
                new[index] = row.statuses[name]
        for index, given in ((8, row.subunit_ids), (9, row.favorite_stores)):
            merged_ids = self._merged_ids(member[index], given)
            if merged_ids is not None:
                new[index] = merged_ids
        changed = new[1:3] != list(member[1:3]) or new[5:8] != list(member[5:8])
        changed = changed or any(new[i] is not member[i] for i in (3, 4, 8, 9))
        return tuple(new) if changed else None

    # Writing ------------------------------------------------------------------------------

    def write(self, batch: _Batch, on_imported: Callable[[list[int]], None] | None) -> list[int]:
        """Write one classified batch; return the ids of its created and updated members."""
        updated = [change[0] for change in batch.changes]
        if batch.changes:
            _update(self.club, batch.changes, batch.fingerprints)
            members_updated.send(
                sender=Member,
                club=self.club,
                member_ids=updated,
                source=self.source,
                actor=self.actor,
            )
        if batch.confirmed:
            _confirm(self.club, batch.confirmed)
        created: list[int] = []
        if batch.creates:
            created = insert_members(
                club=self.club, rows=batch.creates, source=self.source, actor=self.actor
            )

        def resolved(owner: int | _New) -> int:
            return created[owner.index] if isinstance(owner, _New) else owner

        if batch.seen:
            _remember([(resolved(owner), line) for owner, line in batch.seen])
        if on_imported is not None and batch.imported:
            on_imported([resolved(owner) for owner in batch.imported])
        return created + updated


@contextmanager
def _collecting_between_batches() -> Iterator[Callable[[], None]]:
    """Run Python's cyclic garbage collector between batches only; yield the collection.

    A batch's rows live until it commits, so the collector, left to itself, moved them to
    its oldest generation and re-scanned them there every few thousand rows: a sixth of the
    import's time. Collecting only the youngest generation after each batch frees what the
    batch left in reference cycles (a rejected email's ValidationError is one) and scans
    only what the batch allocated.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield partial(gc.collect, 0)
    finally:
        if enabled:
            gc.enable()


def _parse_item(line: int, row: dict[str, Any] | CsvRecord | Reject) -> Row | Reject:
    if isinstance(row, Reject):
        return row
    if isinstance(row, CsvRecord):
        try:
            row = row.row()
        except ValueError as exc:
            return Reject(line, row.text, str(exc))
    if not isinstance(row, Mapping):
        return Reject(line, repr(row), "not a JSON object")
    try:
        return parse_row(line, row)
    except Invalid as exc:
        return Reject(line, getattr(row, "text", row), str(exc))


def import_members(
    *,
    club: Club,
    rows: Iterable[Item],
    mode: str = "upsert",
    match_by: str | None = None,
    arrays: str = "replace",
    dry_run: bool = False,
    batch_size: int = 5000,
    source: str = "import",
    actor: str = "",
    on_reject: Callable[[Reject], None] | None = None,
    on_batch: Callable[[ImportReport, list[int]], None] | None = None,
    on_imported: Callable[[list[int]], None] | None = None,
) -> ImportReport:
    """Create and update a club's members from ``(line, row)`` pairs, batch by batch.

    ``mode``: "upsert" creates new members and updates the others, "create" rejects rows
    of existing members, "update" rejects rows matching nobody. ``match_by``: None matches
    by email, then msisdn, then id; or only by "id", "email" or "msisdn". Properties and
    consents are merged key by key; ``arrays`` ("replace" or "append") says what a given
    array does to the stored one. A row that would change nothing writes nothing.

    Each batch is one transaction: members written, then their groups re-evaluated through
    the domain signals; an interrupted import leaves whole batches, and running it again
    finishes it; a batch aborted by a deadlock runs again. ``on_imported`` runs inside each
    batch's transaction with the ids of the batch's imported members (created, updated or
    unchanged), in file order, and again if the batch runs again; ``on_reject``
    and ``on_batch`` (the running report and the ids of the batch's created and updated
    members) run after each batch commits. ``dry_run`` does all of it in a transaction
    that is rolled back at the end.
    """
    if mode not in MODES or arrays not in ARRAYS or (match_by and match_by not in MATCH_BY):
        raise ValueError(f"mode {mode!r}, match_by {match_by!r} or arrays {arrays!r} unknown")
    if batch_size < 1:
        raise ValueError("batch_size must be positive")
    started = time.perf_counter()
    report = ImportReport()
    importer = _Importer(
        club=club, mode=mode, match_by=match_by, arrays=arrays, source=source, actor=actor
    )
    rows = iter(rows)
    pending: list[Item] = []
    analyze_at = ANALYZE_AFTER if connection.vendor == "postgresql" else math.inf
    with _scratch(dry_run), _collecting_between_batches() as collect:
        while True:
            pending.extend(islice(rows, batch_size - len(pending)))
            if not pending:
                break

            def run_batch() -> tuple[_Batch, int, list[int]]:
                _no_jit()
                batch, taken = importer.classify(importer.prepare(pending))
                return batch, taken, importer.write(batch, on_imported)

            # A batch PostgreSQL aborted to break a deadlock (with a concurrent bulk change
            # or member write) left nothing behind, and runs again.
            batch, taken, ids = in_retried_transaction(run_batch)
            del pending[:taken]
            collect()
            report.created += len(batch.creates)
            report.updated += len(batch.changes)
            report.unchanged += len(batch.unchanged)
            report.rejected += len(batch.rejects)
            if report.created >= analyze_at:
                _refresh_statistics()
                analyze_at = 4 * report.created
            report.elapsed = time.perf_counter() - started
            if on_reject is not None:
                for reject in batch.rejects:
                    on_reject(reject)
            if on_batch is not None:
                on_batch(report, ids)
    report.elapsed = time.perf_counter() - started
    return report
