"""App config for the tenant app."""

from typing import Any

from django.apps import AppConfig
from django.core import checks
from django.core.management import call_command
from django.db import connections
from django.db.backends.signals import connection_created
from django.db.models.signals import post_migrate, pre_migrate


def _sqlite_legacy_alter_table(on: bool, using: str) -> None:
    connection = connections[using]
    if connection.vendor == "sqlite":
        with connection.cursor() as cursor:
            cursor.execute(f"PRAGMA legacy_alter_table = {'ON' if on else 'OFF'}")


def _before_migrate(sender: AppConfig, *, using: str, **kwargs: Any) -> None:
    # SQLite re-makes a table to alter it (create new, copy, drop, rename). The same-club
    # triggers of loyalty.db name other tables, and SQLite's modern rename re-checks every
    # trigger, failing while a referenced table is briefly gone; legacy mode does not.
    _sqlite_legacy_alter_table(True, using)


def _after_migrate(sender: AppConfig, *, using: str, **kwargs: Any) -> None:
    _sqlite_legacy_alter_table(False, using)


def _create_cache_tables(sender: AppConfig, *, using: str, **kwargs: Any) -> None:
    # The API's rate counters live in the database cache by default: `migrate` alone makes
    # its table (and that of any database cache CACHE_URL names), so that migrating and
    # serving is the whole set-up. Idempotent, like the command: an existing table is kept.
    call_command("createcachetable", database=using, verbosity=0)


class LoyaltyConfig(AppConfig):
    name = "loyalty"
    verbose_name = "Loyalty clubs"

    def ready(self) -> None:
        from loyalty import casefold, db_decoding, middleware

        connection_created.connect(
            casefold.register_sqlite_function, dispatch_uid="loyalty.sqlite_fold_case"
        )
        connection_created.connect(
            middleware.set_timeouts_of_new_connection, dispatch_uid="loyalty.web_timeouts"
        )
        connection_created.connect(
            db_decoding.use_c_timestamptz_loader, dispatch_uid="loyalty.c_timestamptz_loader"
        )
        checks.register(casefold.check_icu_collation, checks.Tags.database)
        pre_migrate.connect(_before_migrate, dispatch_uid="loyalty.sqlite_legacy_alter_on")
        post_migrate.connect(_after_migrate, dispatch_uid="loyalty.sqlite_legacy_alter_off")
        post_migrate.connect(
            _create_cache_tables, sender=self, dispatch_uid="loyalty.create_cache_tables"
        )
