"""Case-insensitive text matching that folds every alphabet, the same on both databases.

To fold is to lower-case, then upper-case, with Unicode's full mappings: ``ø`` and ``Ø``
fold alike, so do ``é``/``É``, ``ß``/``ẞ``/``SS``, Greek's small, final and capital sigma,
and ``ж``/``Ж``.
PostgreSQL folds with ICU's root locale (the ``und-x-icu`` collation) whatever the
database's own ctype, which may fold ASCII alone (the C locale) or one letter at a time
(glibc's C.UTF-8: ``ß`` never becomes ``SS``). SQLite, whose ``LIKE`` folds ASCII alone,
calls Python's ``str.lower().upper()``, registered on each of its connections. Both sides
of a comparison are folded in SQL, by the same function.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from django.apps import AppConfig
from django.core.checks import CheckMessage, Error
from django.db import connections
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import Func, TextField, Value
from django.db.models.lookups import Contains, StartsWith

if TYPE_CHECKING:
    from django.db.models.sql.compiler import SQLCompiler

ICU_COLLATION = "und-x-icu"
SQLITE_FUNCTION = "fold_case"


def fold(text: str | None) -> str | None:
    """``text`` case-folded as the databases fold it (None stays None, as NULL does)."""
    return None if text is None else text.lower().upper()


class Folded(Func):
    """The text of an expression, case-folded."""

    output_field = TextField()

    # Parameters in a list, as Django 5.2's own expressions return them (the stubs say a
    # tuple).
    def as_postgresql(
        self, compiler: SQLCompiler, connection: BaseDatabaseWrapper, **extra: Any
    ) -> tuple[str, list[Any]]:
        # The collation picks the case mapping; lower() hands it on to upper().
        template = f'UPPER(LOWER((%(expressions)s)::text COLLATE "{ICU_COLLATION}"))'
        sql, params = self.as_sql(compiler, connection, template=template, **extra)
        return sql, [*params]

    def as_sqlite(  # type: ignore[override]
        self, compiler: SQLCompiler, connection: BaseDatabaseWrapper, **extra: Any
    ) -> tuple[str, list[Any]]:
        # As text, as PostgreSQL reads it: a JSON number reaches the function as "42".
        template = f"{SQLITE_FUNCTION}(CAST(%(expressions)s AS TEXT))"
        sql, params = self.as_sql(compiler, connection, template=template, **extra)
        return sql, [*params]


def contains(expression: Any, text: str) -> Contains:
    """``expression`` contains ``text``, whatever the case of either."""
    return Contains(Folded(expression), Folded(Value(text)))


def starts_with(expression: Any, text: str) -> StartsWith:
    """``expression`` starts with ``text``, whatever the case of either."""
    return StartsWith(Folded(expression), Folded(Value(text)))


def register_sqlite_function(
    sender: type[BaseDatabaseWrapper], connection: BaseDatabaseWrapper, **kwargs: Any
) -> None:
    """``connection_created`` receiver: give each new SQLite connection the fold function."""
    if connection.vendor == "sqlite":
        connection.connection.create_function(SQLITE_FUNCTION, 1, fold, deterministic=True)


def check_icu_collation(
    *, app_configs: Sequence[AppConfig] | None, databases: Sequence[str] | None, **kwargs: Any
) -> list[CheckMessage]:
    """A PostgreSQL without ICU cannot fold case as the API promises: say so at ``migrate``."""
    errors: list[CheckMessage] = []
    for alias in databases or []:
        connection = connections[alias]
        if connection.vendor != "postgresql":
            continue
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1 FROM pg_collation WHERE collname = %s", [ICU_COLLATION])
            if cursor.fetchone() is None:
                errors.append(
                    Error(
                        f'The PostgreSQL of the database "{alias}" has no ICU collation '
                        f'"{ICU_COLLATION}": case-insensitive matching needs a server built '
                        "with ICU (--with-icu, the default since PostgreSQL 16).",
                        id="loyalty.E001",
                    )
                )
    return errors
