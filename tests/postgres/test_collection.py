"""The PostgreSQL-only folder is collected only when the tests run on PostgreSQL."""

from __future__ import annotations

from django.db import connection


def test_this_folder_runs_on_postgresql_only(db: None) -> None:
    assert connection.vendor == "postgresql"
