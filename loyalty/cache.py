"""The database cache the API rate limit counts in, shared by every web process."""

from __future__ import annotations

import base64
import pickle
from typing import Any

from django.core.cache.backends import db
from django.db import connections, router, transaction
from django.utils.timezone import now as tz_now


class DatabaseCache(db.DatabaseCache):
    """Django's database cache with an atomic ``incr`` (the stock one reads, then writes).

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
