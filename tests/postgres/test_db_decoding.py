"""Timestamps decoded by psycopg's C loader (``loyalty.db_decoding``) are the values
Django's own loader gives: same instants, same zone object, same text."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from django.db import DataError, connection
from django.db.backends.postgresql.psycopg_any import register_tzloader
from psycopg.pq import Format

from loyalty.db_decoding import UtcTimestamptzLoader

TIMESTAMPTZ_OID = 1184

pytestmark = pytest.mark.django_db

TIMESTAMPS = [
    "2026-12-07 14:28:14.123456+00",
    "2026-12-07 14:28:14+00",
    "2026-03-29 01:30:00.5+02",
    "2000-02-29 23:59:59.999999+05:30",
    "1970-01-01 00:00:00.000001-08",
    "0001-01-01 00:00:00+00",
    "9999-12-31 23:59:59.999999+00",
]
QUERY = "SELECT unnest(%s::text[]::timestamptz[])"


def _decoded(cursor: Any, *, djangos: bool) -> list[datetime]:
    if djangos:
        register_tzloader(connection.timezone, cursor.cursor)
    cursor.execute(QUERY, [TIMESTAMPS])
    return [row[0] for row in cursor.fetchall()]


def test_the_c_loader_decodes_every_timestamptz_of_the_connection() -> None:
    connection.ensure_connection()
    loader = connection.connection.adapters.get_loader(TIMESTAMPTZ_OID, Format.TEXT)
    assert loader is UtcTimestamptzLoader


def test_its_values_are_djangos_to_the_microsecond_and_zone() -> None:
    with connection.cursor() as cursor:
        ours = _decoded(cursor, djangos=False)
    with connection.cursor() as cursor:
        djangos = _decoded(cursor, djangos=True)
    assert ours == djangos
    assert [value.isoformat() for value in ours] == [value.isoformat() for value in djangos]
    assert all(value.tzinfo is UTC for value in ours)
    assert ours[0] == datetime(2026, 12, 7, 14, 28, 14, 123456, tzinfo=UTC)


@pytest.mark.parametrize("djangos", [False, True])
def test_a_timestamp_python_cannot_hold_is_refused_alike(djangos: bool) -> None:
    with connection.cursor() as cursor:
        if djangos:
            register_tzloader(connection.timezone, cursor.cursor)
        loader = cursor.cursor.adapters.get_loader(TIMESTAMPTZ_OID, Format.TEXT)
        assert (loader is UtcTimestamptzLoader) is not djangos
        cursor.execute("SELECT 'infinity'::timestamptz")
        with pytest.raises(DataError, match="after year 10K"):
            cursor.fetchall()
