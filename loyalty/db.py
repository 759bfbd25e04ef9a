"""Database plumbing shared by the apps: same-club foreign keys, array parameters, retries."""

from __future__ import annotations

import json
import logging
import random
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, TypeVar

from django.db import OperationalError, connection, transaction
from django.db.backends.base.schema import BaseDatabaseSchemaEditor
from django.db.migrations.operations.base import Operation
from django.db.migrations.state import ProjectState
from django.db.models import BooleanField, Func, QuerySet, Subquery

if TYPE_CHECKING:
    from django.db.backends.base.base import BaseDatabaseWrapper
    from django.db.models.sql.compiler import SQLCompiler


class AddSameClubForeignKey(Operation):
    """Make ``model.column`` point at a row of ``to`` *in the same club*.

    PostgreSQL gets a composite foreign key ``(club_id, column) -> to(club_id, id)``; SQLite,
    which cannot add constraints to an existing table, gets triggers with the same effect.
    Where the plain single-column foreign key is redundant (membership rows, written in
    bulk), the model field is declared with ``db_constraint=False`` so the database pays for
    one check per column, not two.

    On SQLite a later migration that re-makes the *constrained* table drops its triggers:
    such a migration must end with ``RestoreSameClubForeignKey`` (the cross-club tests
    catch a forgotten one).
    """

    reversible = True

    def __init__(self, model_name: str, column: str, to: str, on_delete: str = "CASCADE") -> None:
        self.model_name = model_name
        self.column = column
        self.to = to
        self.on_delete = on_delete

    def deconstruct(self) -> tuple[str, list[Any], dict[str, Any]]:
        kwargs = {"model_name": self.model_name, "column": self.column, "to": self.to}
        return (self.__class__.__name__, [], {**kwargs, "on_delete": self.on_delete})

    def state_forwards(self, app_label: str, state: ProjectState) -> None:
        """Change no model state: the constraint lives in the database only."""

    def _tables(self, app_label: str, state: ProjectState) -> tuple[str, str, str]:
        table = state.apps.get_model(app_label, self.model_name)._meta.db_table
        ref = state.apps.get_model(self.to)._meta.db_table
        return table, ref, f"{table}_{self.column}_same_club"

    def database_forwards(
        self,
        app_label: str,
        schema_editor: BaseDatabaseSchemaEditor,
        from_state: ProjectState,
        to_state: ProjectState,
    ) -> None:
        table, ref, name = self._tables(app_label, to_state)
        col = self.column
        if schema_editor.connection.vendor == "postgresql":
            with schema_editor.connection.cursor() as cursor:
                cursor.execute("SELECT 1 FROM pg_constraint WHERE conname = %s", [name])
                if cursor.fetchone():
                    return
            schema_editor.execute(
                f'ALTER TABLE "{table}" ADD CONSTRAINT "{name}" FOREIGN KEY ("club_id", "{col}") '
                f'REFERENCES "{ref}" ("club_id", "id") ON DELETE {self.on_delete}'
            )
            return
        for event in ("INSERT", "UPDATE"):
            schema_editor.execute(
                f'CREATE TRIGGER IF NOT EXISTS "{name}_{event.lower()}" '
                f'BEFORE {event} ON "{table}" '
                f'WHEN NEW."{col}" IS NOT NULL AND NOT EXISTS (SELECT 1 FROM "{ref}" '
                f'WHERE "id" = NEW."{col}" AND "club_id" = NEW."club_id") '
                f"BEGIN SELECT RAISE(ABORT, 'FOREIGN KEY constraint failed: {name}'); END"
            )

    def database_backwards(
        self,
        app_label: str,
        schema_editor: BaseDatabaseSchemaEditor,
        from_state: ProjectState,
        to_state: ProjectState,
    ) -> None:
        table, _ref, name = self._tables(app_label, from_state)
        if schema_editor.connection.vendor == "postgresql":
            schema_editor.execute(f'ALTER TABLE "{table}" DROP CONSTRAINT "{name}"')
            return
        for event in ("insert", "update"):
            schema_editor.execute(f'DROP TRIGGER "{name}_{event}"')

    def describe(self) -> str:
        return f"Same-club foreign key on {self.model_name}.{self.column} -> {self.to}"


class RestoreSameClubForeignKey(AddSameClubForeignKey):
    """Put back, after SQLite re-made the table, a check an earlier migration added.

    Adding is idempotent, so on PostgreSQL (which keeps constraints) this does nothing;
    going backwards leaves the check to the migration that first added it.
    """

    def database_backwards(
        self,
        app_label: str,
        schema_editor: BaseDatabaseSchemaEditor,
        from_state: ProjectState,
        to_state: ProjectState,
    ) -> None:
        """Keep the check: the earlier migration owns it."""


def in_array(column: str, sql_type: str) -> str:
    """SQL testing ``column`` against one array parameter of ``sql_type`` (see ``array_param``).

    One bound array instead of an ``IN (...)`` list: about 2x faster to plan on PostgreSQL
    and free of the 65,535-parameter limit (PERFORMANCE.md).
    """
    if connection.vendor == "postgresql":
        return f"{column} = ANY(%s::{sql_type}[])"
    return f"{column} IN (SELECT value FROM json_each(%s))"


def array_rows(sql_type: str, alias: str) -> str:
    """A FROM-clause table ``alias`` with one row, column ``value``, per array element."""
    if connection.vendor == "postgresql":
        return f"unnest(%s::{sql_type}[]) AS {alias}(value)"
    return f"(SELECT value FROM json_each(%s)) AS {alias}"


def pg_array(values: Iterable[Any]) -> str:
    """Integers or strings (all one kind) as a PostgreSQL array literal, to bind as text.

    psycopg's list adapter, which runs in Python, took 6x as long for 100,000 ids (76 ms)
    and 2.7x for 100,000 emails (130 ms), and a bulk change binds several such arrays.
    """
    values = list(values)
    if not values:
        return "{}"
    if isinstance(values[0], int):
        # int.__repr__ refuses a string that slipped in, rather than quoting it.
        return "{" + ",".join(map(int.__repr__, values)) + "}"
    joined = "".join(values)
    if '"' in joined or "\\" in joined:
        values = [value.replace("\\", "\\\\").replace('"', '\\"') for value in values]
    return '{"' + '","'.join(values) + '"}'


def array_param(values: Iterable[Any]) -> Any:
    """Bind a Python sequence as one array parameter for ``in_array``/``array_rows``."""
    if connection.vendor == "postgresql":
        return pg_array(values)
    return json.dumps(list(values))


class InArray(Func):
    """``expression IN <one array parameter>``, usable in ``filter()`` like a lookup."""

    output_field = BooleanField()

    def __init__(self, expression: Any, values: Iterable[Any], sql_type: str = "bigint") -> None:
        super().__init__(expression)
        self.values = list(values)
        self.sql_type = sql_type

    # Parameters in a list, as Django 5.2's own expressions return them (the stubs say a
    # tuple), and no template arguments (unlike Func's).
    def as_sql(  # type: ignore[override]
        self, compiler: SQLCompiler, connection: BaseDatabaseWrapper, **extra: Any
    ) -> tuple[str, list[Any]]:
        sql, params = compiler.compile(self.source_expressions[0])
        if connection.vendor == "postgresql":
            return f"{sql} = ANY(%s::{self.sql_type}[])", [*params, pg_array(self.values)]
        return f"{sql} IN (SELECT value FROM json_each(%s))", [*params, json.dumps(self.values)]


class InSubqueryArray(Func):
    """``expression IN (subquery)``, the subquery read first into an array on PostgreSQL
    (``= ANY(ARRAY(subquery))``): its rows are then fetched by primary key and sorted.

    Written as ``IN``, a small group's members sorted by a field with a ``LIMIT`` are
    planned as a walk of the club's whole index on that field probing each member whenever
    the statistics guess the group larger than it is (they lag a club's groups): 300 to 600
    ms for a group of 1,000 in a club of 1,000,000, where reading the group first takes 5
    to 8 ms. The array's size is unknown when planning, so no statistics can steer it.
    """

    output_field = BooleanField()

    def __init__(self, expression: Any, subquery: QuerySet[Any]) -> None:
        super().__init__(expression, Subquery(subquery))

    def as_sql(  # type: ignore[override]
        self, compiler: SQLCompiler, connection: BaseDatabaseWrapper, **extra: Any
    ) -> tuple[str, list[Any]]:
        sql, params = compiler.compile(self.source_expressions[0])
        subquery, subquery_params = compiler.compile(self.source_expressions[1])
        if connection.vendor == "postgresql":
            return f"{sql} = ANY(ARRAY{subquery})", [*params, *subquery_params]
        return f"{sql} IN {subquery}", [*params, *subquery_params]


T = TypeVar("T")

logger = logging.getLogger(__name__)

# SQLSTATEs of a transaction PostgreSQL aborted to let another through: deadlock_detected
# and serialization_failure. Running the same transaction again is the documented remedy.
RETRYABLE_SQLSTATES = frozenset({"40P01", "40001"})
TRANSACTION_ATTEMPTS = 5


def is_retryable(exc: BaseException) -> bool:
    """Whether the database aborted the transaction for a deadlock or a serialization failure."""
    cause: BaseException | None = exc
    while cause is not None:
        if getattr(cause, "sqlstate", None) in RETRYABLE_SQLSTATES:
            return True
        cause = cause.__cause__
    return False


def in_retried_transaction(func: Callable[[], T], attempts: int = TRANSACTION_ATTEMPTS) -> T:
    """Run ``func`` in one transaction, from the start again if the database aborted it for a
    deadlock or a serialization failure (at most ``attempts`` runs in all).

    Only an outermost transaction is retried: inside a caller's transaction the error goes
    up, since that whole transaction is lost. ``func`` must have no effect outside the
    database before it returns (effects after commit go through ``transaction.on_commit``).
    """
    attempt = 1
    while True:
        try:
            with transaction.atomic():
                return func()
        except OperationalError as exc:
            if attempt >= attempts or connection.in_atomic_block or not is_retryable(exc):
                raise
            logger.warning("Transaction aborted (%s), attempt %d: running it again", exc, attempt)
            # A random pause, growing with each attempt, so the two sides do not meet again.
            time.sleep(random.uniform(0, 0.05 * 2**attempt))
            attempt += 1
