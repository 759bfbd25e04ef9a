"""The schema stays ready to be distributed by club (Citus): read from the live database.

Every table of the project's apps but the club's has the club column, and every unique
constraint or index (primary keys other than a surrogate ``id`` included) covers the club,
so that each can be enforced inside one shard.
"""

from __future__ import annotations

import pytest
from django.apps import apps
from django.db import connection

APPS = ("loyalty", "members", "audiences", "groups")
CLUB_TABLE = "loyalty_club"
CLUB_COLUMN = "club_id"


def project_tables() -> list[str]:
    tables = {
        model._meta.db_table
        for app in APPS
        for model in apps.get_app_config(app).get_models(include_auto_created=True)
    }
    return sorted(tables)


def shard_problems(tables: list[str]) -> list[str]:
    """What would stop these tables from being distributed by club."""
    problems = []
    with connection.cursor() as cursor:
        for table in tables:
            if table == CLUB_TABLE:
                continue
            columns = {
                c.name for c in connection.introspection.get_table_description(cursor, table)
            }
            if CLUB_COLUMN not in columns:
                problems.append(f"{table} has no {CLUB_COLUMN}")
                continue
            constraints = connection.introspection.get_constraints(cursor, table)
            for name, info in constraints.items():
                if not (info["unique"] or info["primary_key"]):
                    continue
                if info["primary_key"] and info["columns"] == ["id"]:
                    continue
                if CLUB_COLUMN not in info["columns"]:
                    problems.append(f"{table}.{name} {info['columns']} does not cover the club")
    return problems


def test_every_project_table_but_the_clubs_is_keyed_by_club(db: None) -> None:
    tables = project_tables()
    assert {"members_member", "groups_membership", "groups_membershipevent"} <= set(tables)

    assert shard_problems(tables) == []


@pytest.mark.parametrize(
    ("ddl", "problem"),
    [
        ("CREATE TABLE shard_probe (id integer PRIMARY KEY, email varchar(9))", "has no club_id"),
        (
            "CREATE TABLE shard_probe (id integer PRIMARY KEY, club_id integer, "
            "email varchar(9) UNIQUE)",
            "does not cover the club",
        ),
        (
            "CREATE TABLE shard_probe (club_id integer, code varchar(9), PRIMARY KEY (code))",
            "does not cover the club",
        ),
    ],
)
def test_the_check_catches_a_table_that_could_not_be_distributed(
    db: None, ddl: str, problem: str
) -> None:
    with connection.cursor() as cursor:
        cursor.execute(ddl)

    problems = shard_problems(["shard_probe"])

    assert len(problems) == 1
    assert problem in problems[0]
