"""PostgreSQL folds case with ICU: a server without it is refused by the database checks
(``migrate`` runs them), not found out by a wrong search."""

from __future__ import annotations

import io

import pytest
from django.core.management import call_command
from django.core.management.base import SystemCheckError
from django.db import connection

from loyalty import casefold

pytestmark = pytest.mark.django_db


def test_the_database_checks_pass_where_case_can_be_folded() -> None:
    call_command("check", "--database", "default", stdout=io.StringIO())


def test_a_postgresql_without_the_icu_collation_fails_the_database_checks(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(casefold, "ICU_COLLATION", "no-such-collation")

    if connection.vendor != "postgresql":
        # SQLite folds in Python: it needs no collation.
        call_command("check", "--database", "default", stdout=io.StringIO())
        return
    with pytest.raises(SystemCheckError, match=r"loyalty\.E001"):
        call_command("check", "--database", "default", stdout=io.StringIO())
