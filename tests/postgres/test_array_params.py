"""Python lists reach PostgreSQL as one array literal (``loyalty.db.pg_array``): every value
comes back exactly as it went, whatever array syntax it holds."""

from __future__ import annotations

from typing import Any

import pytest
from django.db import connection

from loyalty.db import array_param

pytestmark = pytest.mark.django_db


def round_trip(values: list[Any], sql_type: str) -> list[Any]:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT %s::{sql_type}[]", [array_param(values)])
        result: list[Any] = cursor.fetchone()[0]
        return result


@pytest.mark.parametrize(
    "values",
    [
        [],
        ["plain", 'a "quoted" word', "back\\slash", '\\"', "a,b", "{braces}", "NULL", ""],
        [" spaced ", "tab\tand\nline", "ünïcödé ☃", "o'brien", "'"],
    ],
)
def test_text_values_come_back_unchanged(values: list[str]) -> None:
    assert round_trip(values, "text") == values


def test_integers_come_back_unchanged() -> None:
    values = [0, -1, 2**63 - 1, -(2**63), 42]

    assert round_trip(values, "bigint") == values


def test_a_mixed_list_is_refused_rather_than_misquoted() -> None:
    with pytest.raises(TypeError):
        array_param([1, "2"])
    with pytest.raises(TypeError):
        array_param(["1", 2])
