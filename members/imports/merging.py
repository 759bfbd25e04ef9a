"""How an import row becomes a new member, or changes a stored one."""

from __future__ import annotations

import json
from typing import Any, cast

from django.db import models
from django.utils import timezone

from members.imports.database import Stored
from members.imports.rows import STATUS_FIELDS, Row
from members.models import Member
from members.services import json_text

# The statuses of a new member whose row does not give them: the model's defaults.
NEW_MEMBER = {
    name: cast("models.Field[Any, Any]", Member._meta.get_field(name)).default
    for name in STATUS_FIELDS
}


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


def appended(stored: list[Any], given: list[Any]) -> list[Any]:
    result = list(stored)
    for item in given:
        if not any(same(item, old) for old in result):
            result.append(item)
    return result


class Merger:
    """Merges rows under one import's options; ``append``: a given array adds its new items
    to the stored one instead of replacing it."""

    def __init__(self, *, append: bool) -> None:
        self.append = append
        self.now_iso = timezone.now().isoformat()

    def _consent(self, given: tuple[bool, str | None]) -> dict[str, Any]:
        return {"status": given[0], "updated_at": given[1] or self.now_iso}

    def new_member(self, row: Row) -> list[Any]:
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
                value = appended(old, value)
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
        value = appended(stored, given) if self.append else given
        return None if same(stored, value) else json.dumps(value)

    def merge(self, row: Row, member: Stored) -> Stored | None:
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
