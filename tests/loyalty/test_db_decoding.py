"""The project's ``JSONField`` (``loyalty.db_decoding``) reads every stored text as Django's
field does: the same values, and the same answer for text that is not one JSON value."""

from __future__ import annotations

from typing import Any

import pytest
from django.db import connection, models

from members.models import Member

TEXTS = [
    "{}",
    "[]",
    '{"a": 1, "b": [1, 2.5, -0.0, 1e-07, 12345678901234567890123], "c": {"d": null}}',
    '{"name": "Åse \\u00f8\\ud83d\\ude00 \\u2028", "ok": true, "no": false}',
    '"a string"',
    "17",
    "1.0",
    "null",
    ' {"leading": "space"}',
    '{"trailing": "space"} ',
    '{"a": 1} {"b": 2}',
    "not json",
    "",
    '{"unterminated": ',
    '"unterminated',
    '{"a": 1,}',
    "[1 2]",
    "Bob",
]


@pytest.mark.parametrize("text", TEXTS)
def test_a_stored_text_reads_as_djangos_field_reads_it(text: str) -> None:
    ours = Member._meta.get_field("properties")
    djangos = models.JSONField()
    expected: Any = djangos.from_db_value(text, None, connection)
    read = ours.from_db_value(text, None, connection)  # type: ignore[attr-defined]
    assert read == expected
    assert type(read) is type(expected)


def test_sql_null_reads_as_none() -> None:
    ours = Member._meta.get_field("properties")
    assert ours.from_db_value(None, None, connection) is None  # type: ignore[attr-defined]
