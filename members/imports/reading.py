"""Reading import files, one row at a time: members from CSV (any header, typed columns) or
JSON lines (``read_rows``), and identifiers, one per line or a CSV column
(``read_identifiers``, for a group's members)."""

from __future__ import annotations

import codecs
import csv
import json
import math
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from itertools import chain
from pathlib import Path
from typing import Any, BinaryIO


@dataclass(frozen=True)
class Reject:
    """A row that was not imported: its line, the row as given, and why."""

    line: int
    row: Mapping[str, Any] | str
    reason: str


Item = tuple[int, "dict[str, Any] | CsvRecord | Reject"]


PROPERTY_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")
# Surrogates stand for bytes that are not UTF-8 (files are decoded with "surrogateescape");
# neither they nor NUL can be stored in PostgreSQL text.
UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
_INTEGER = re.compile(r"[+-]?\d+")
_TRUE = frozenset({"true", "yes", "1"})
_FALSE = frozenset({"false", "no", "0"})
JSON_LINES_SUFFIXES = frozenset({".jsonl", ".ndjson", ".json"})
DELIMITERS = (",", ";", "\t")
# Member fields a CSV column may name; every other column is a property.
CSV_FIELDS = frozenset({"id", "email", "msisdn", "sms_status", "email_status", "push_status"})
CSV_ARRAYS = frozenset({"subunit_ids", "favorite_stores"})
# A row's member is the one with its email, else its msisdn, else its id (see ``rows.lookup_key``).
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


def unstorable(text: str) -> str:
    return "contains a NUL character" if "\x00" in text else "is not valid UTF-8"


def _check_text(value: Any) -> None:
    """Raise ``ValueError`` if a string in the decoded JSON ``value`` cannot be stored."""
    if isinstance(value, str):
        if UNSTORABLE.search(value):
            raise ValueError(f"a string {unstorable(value)}")
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


def _skip_bom(file: BinaryIO) -> int:
    """Read past a UTF-8 byte order mark if the file starts with one; return its length."""
    if file.read(len(codecs.BOM_UTF8)) == codecs.BOM_UTF8:
        return len(codecs.BOM_UTF8)
    file.seek(0)
    return 0


def delimiter_of(header: str) -> str:
    """The delimiter of a CSV file: the one of comma, semicolon and tab its header has most."""
    return max(DELIMITERS, key=header.count)


def _csv_error(exc: csv.Error) -> str:
    return f"not valid CSV: {exc}"


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
            self.bytes_read = _skip_bom(file)
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
            if UNSTORABLE.search(text):
                yield number, Reject(number, text, f"the line {unstorable(text)}")
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
        reader = csv.reader(lines, delimiter=delimiter_of(header), strict=True)
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
                cells, error = [], _csv_error(exc)
            number = skipped + previous + 1
            previous = reader.line_num
            text = "".join(self._record).rstrip("\r\n")
            self._record.clear()
            if not error and not any(cell.strip() for cell in cells):
                continue
            if UNSTORABLE.search(text):
                error = f"the row {unstorable(text)}"
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


# Identifiers ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Identifier:
    """An identifier as written on a line of a file, trimmed."""

    line: int
    value: str


class NotUtf8(ValueError):
    """A file that is not UTF-8; ``line`` is the first line that is not."""

    def __init__(self, line: int) -> None:
        super().__init__(f"not UTF-8 (line {line})")
        self.line = line


SCAN_CHUNK = 1 << 20


def count_lines(path: Path) -> int:
    """Count the file's lines, checking that it is UTF-8 (else raise ``NotUtf8``)."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    lines, last = 0, b"\n"
    with path.open("rb") as file:
        try:
            for chunk in iter(partial(file.read, SCAN_CHUNK), b""):
                decoder.decode(chunk)
                lines += chunk.count(b"\n")
                last = chunk[-1:]
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            file.seek(0)
            raise NotUtf8(next(n for n, line in enumerate(file, 1) if not _utf8(line))) from None
    return lines + (last != b"\n")


def _utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _column_index(header: str, column: str) -> int:
    """The index of ``column`` in a CSV header line: the exact name, else the one name that
    differs only in case (as member columns are read); raise ``ValueError``."""
    try:
        cells = next(csv.reader([header], delimiter=delimiter_of(header)), [])
    except csv.Error as exc:
        raise ValueError(f"The header row is not valid CSV: {exc}") from None
    names = [name.strip() for name in cells]
    wanted = column.strip()
    named = [i for i, name in enumerate(names) if name == wanted] or [
        i for i, name in enumerate(names) if name.casefold() == wanted.casefold()
    ]
    if len(named) != 1:
        problem = "No column" if not named else "More than one column named"
        raise ValueError(f"{problem} {column!r} in the header row ({', '.join(map(repr, names))})")
    return named[0]


def read_identifiers(path: Path, column: str | None = None) -> Iterator[Identifier | Reject]:
    """The identifiers of a UTF-8 file (with or without BOM), read lazily: one per line, or
    the cells of ``column`` of a CSV file whose first line names its columns. Blank lines and
    empty cells are skipped; a record the CSV reader refuses is a ``Reject`` of its line, and
    reading goes on. The header is read at once: a ``ValueError`` says what is wrong with it.
    """
    if column is None:
        return _plain_identifiers(path)
    with path.open(encoding="utf-8-sig", newline="") as file:
        header = file.readline()
    return _column_identifiers(path, _column_index(header, column), delimiter_of(header))


def _plain_identifiers(path: Path) -> Iterator[Identifier | Reject]:
    with path.open(encoding="utf-8-sig", newline="") as file:
        for number, line in enumerate(file, 1):
            if value := line.strip():
                yield Identifier(number, value)


def _column_identifiers(path: Path, index: int, delimiter: str) -> Iterator[Identifier | Reject]:
    with path.open(encoding="utf-8-sig", newline="") as file:
        file.readline()
        reader = csv.reader(file, delimiter=delimiter)
        # Line numbers are the reader's + 1: the header line was read before it.
        while True:
            try:
                row = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                yield Reject(reader.line_num + 1, "", _csv_error(exc))
                continue
            if value := (row[index].strip() if index < len(row) else ""):
                yield Identifier(reader.line_num + 1, value)
