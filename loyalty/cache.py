"""The caches the API rate limit counts in, shared by every web process: the database's
table (the default) or Redis, each counting a request in one round trip (``hit``)."""

from __future__ import annotations

import base64
import math
import pickle
import time
from contextlib import nullcontext
from datetime import UTC, datetime
from typing import Any

from django.core.cache.backends import db, redis
from django.db import connections, router, transaction
from django.db.backends.base.base import BaseDatabaseWrapper
from django.utils.timezone import now as tz_now


class DatabaseCache(db.DatabaseCache):
    """Django's database cache with an atomic ``incr`` (the stock one reads, then writes) and
    ``hit``, the rate limit's counter in one statement.

    ``add`` is already atomic: the key is the table's primary key.
    """

    _table: str  # set by Django's __init__, undeclared in the stubs

    def incr(self, key: Any, delta: int = 1, version: int | None = None) -> Any:
        key = self.make_and_validate_key(key, version=version)
        using = router.db_for_write(self.cache_model_class)
        connection = connections[using]
        quote_name = connection.ops.quote_name
        table, cache_key = quote_name(self._table), quote_name("cache_key")
        value_column, expires = quote_name("value"), quote_name("expires")
        now = connection.ops.adapt_datetimefield_value(tz_now().replace(microsecond=0, tzinfo=None))
        with transaction.atomic(using=using), connection.cursor() as cursor:
            # Write before reading: the row lock (on SQLite the database's write lock) is
            # taken first, so concurrent increments queue instead of losing one another.
            cursor.execute(
                f"UPDATE {table} SET {expires} = {expires} "
                f"WHERE {cache_key} = %s AND {expires} > %s",
                [key, now],
            )
            if cursor.rowcount != 1:
                raise ValueError(f"Key '{key}' not found")
            cursor.execute(f"SELECT {value_column} FROM {table} WHERE {cache_key} = %s", [key])
            value = pickle.loads(base64.b64decode(cursor.fetchone()[0].encode())) + delta
            pickled = pickle.dumps(value, self.pickle_protocol)
            cursor.execute(
                f"UPDATE {table} SET {value_column} = %s WHERE {cache_key} = %s",
                [base64.b64encode(pickled).decode("latin1"), key],
            )
        return value

    def hit(self, key: str, window_ends: float) -> int:
        """Add one to the counter ``key`` of the window ending at ``window_ends`` (a Unix
        time) and return its new value.

        One row per key, whatever the window: an upsert creates it, counts in it while its
        window lasts and starts it again at 1 in the next, so the rows of past windows never
        pile up. The count is kept as digits, not pickled (SQL adds to it), so only ``hit``
        reads it.
        """
        key = self.make_and_validate_key(key)
        using = router.db_for_write(self.cache_model_class)
        connection = connections[using]
        adapt = connection.ops.adapt_datetimefield_value
        ends = adapt(datetime.fromtimestamp(window_ends, UTC).replace(tzinfo=None))
        now = adapt(tz_now().replace(tzinfo=None))
        # Alone, the statement is its own transaction. Inside a caller's, a savepoint keeps
        # a failure of the store (the table missing) from aborting the caller's work.
        in_transaction = connection.in_atomic_block
        with (
            transaction.atomic(using=using) if in_transaction else nullcontext(),
            connection.cursor() as cursor,
        ):
            cursor.execute(_hit_sql(connection, self._table), [key, ends, now, now])
            return int(cursor.fetchone()[0])


# The upsert of DatabaseCache.hit by database vendor and table, written once.
_HIT_SQL: dict[tuple[str, str], str] = {}


def _hit_sql(connection: BaseDatabaseWrapper, table: str) -> str:
    """The upsert of ``DatabaseCache.hit`` (PostgreSQL and SQLite alike)."""
    sql = _HIT_SQL.get((connection.vendor, table))
    if sql is None:
        sql = _HIT_SQL[connection.vendor, table] = _write_hit_sql(connection, table)
    return sql


def _write_hit_sql(connection: BaseDatabaseWrapper, table: str) -> str:
    quote_name = connection.ops.quote_name
    table, key, value, expires = map(quote_name, (table, "cache_key", "value", "expires"))
    # An existing row counts on while its window lasts (the row lock, on SQLite the write
    # lock, orders concurrent hits), and starts again at 1 with the new window's end.
    return (
        f"INSERT INTO {table} ({key}, {value}, {expires}) VALUES (%s, '1', %s) "
        f"ON CONFLICT ({key}) DO UPDATE SET "
        f"{value} = CASE WHEN {table}.{expires} > %s "
        f"THEN CAST(CAST({table}.{value} AS bigint) + 1 AS text) ELSE '1' END, "
        f"{expires} = CASE WHEN {table}.{expires} > %s "
        f"THEN {table}.{expires} ELSE excluded.{expires} END "
        f"RETURNING {value}"
    )


class RedisCache(redis.RedisCache):
    """Django's Redis cache with ``hit``: the rate limit's counter in one round trip."""

    def hit(self, key: str, window_ends: float) -> int:
        """Add one to the counter ``key`` of the window ending at ``window_ends`` (a Unix
        time) and return its new value; the counter expires a second after its window."""
        key = self.make_and_validate_key(f"{key}:{int(window_ends)}")
        client = self._cache.get_client(key, write=True)
        ttl = max(math.ceil(window_ends - time.time()), 0) + 1
        # One round trip: create the counter at 0 with its expiry unless it exists, add one.
        pipeline = client.pipeline(transaction=False)
        pipeline.set(key, 0, ex=ttl, nx=True)
        pipeline.incr(key)
        return int(pipeline.execute()[1])
