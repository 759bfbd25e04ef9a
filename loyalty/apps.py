"""App config for the tenant app."""

from typing import Any

from django.apps import AppConfig
from django.db import connections
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


class LoyaltyConfig(AppConfig):
    name = "loyalty"
    verbose_name = "Loyalty clubs"

    def ready(self) -> None:
        pre_migrate.connect(_before_migrate, dispatch_uid="loyalty.sqlite_legacy_alter_on")
        post_migrate.connect(_after_migrate, dispatch_uid="loyalty.sqlite_legacy_alter_off")
