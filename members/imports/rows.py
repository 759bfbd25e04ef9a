"""Import rows validated and normalised like the services do, and the key of a known one."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from members.imports.reading import (
    IGNORED_FIELDS,
    LOOKUP_ORDER,
    UNSTORABLE,
    CsvRecord,
    FileRow,
    Reject,
    unstorable,
)
from members.models import ChannelStatus
from members.normalize import (
    NORMALIZERS,
    InvalidConsent,
    InvalidIdentifier,
    normalize_consent,
    normalize_email,
    normalize_id,
    normalize_msisdn,
)
from members.services import MEMBER_FIELDS

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
    try:
        return normalize_consent(value)
    except InvalidConsent as exc:
        where = f"consents.{name}.{exc.part}" if exc.part else f"consents.{name}"
        raise Invalid(f"{where} {exc}") from None


def _check_json(value: Any, where: str) -> None:
    """Refuse what JSON cannot carry (rows given by code rather than read from a file)."""
    if value is None or isinstance(value, bool | int | str):
        if isinstance(value, str) and UNSTORABLE.search(value):
            raise Invalid(f"{where}: a string {unstorable(value)}")
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise Invalid(f"{where}: {value} is not a JSON number")
    elif isinstance(value, list):
        for item in value:
            _check_json(item, where)
    elif isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str) or UNSTORABLE.search(key):
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


def lookup_key(row: FileRow | CsvRecord) -> tuple[str, str] | None:
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


def parse_item(line: int, row: dict[str, Any] | CsvRecord | Reject) -> Row | Reject:
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
