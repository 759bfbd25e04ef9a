"""The schema is keyed by club: every club-owned table carries club_id, and its unique
constraints and indexes lead with it (so the tables can be distributed by club)."""

from __future__ import annotations

import pytest
from django.apps import apps
from django.db import connection

pytestmark = pytest.mark.django_db

OUR_APPS = ("loyalty", "members", "audiences", "groups")
# Indexes that need not lead with the club, each with the reason.
EXEMPT_INDEXES = {
    # Django's table behind Club.managers: keyed by club already; this finds a user's clubs.
    ("loyalty_club_managers", ("user_id",)),
    # The sweep for due webhook retries reads across clubs; partial, on pending rows only.
    ("groups_webhookdelivery", ("next_attempt_at",)),
    # Finished deliveries are pruned by age across clubs; partial, on finished rows only.
    ("groups_webhookdelivery", ("created_at",)),
}


def club_tables() -> list[str]:
    tables = []
    for app in OUR_APPS:
        for model in apps.get_app_config(app).get_models():
            tables.append(model._meta.db_table)
            tables.extend(
                field.remote_field.through._meta.db_table
                for field in model._meta.local_many_to_many
            )
    return [table for table in tables if table != "loyalty_club"]


@pytest.mark.parametrize("table", club_tables())
def test_every_club_table_leads_its_keys_with_the_club(table: str) -> None:
    with connection.cursor() as cursor:
        columns = [c.name for c in connection.introspection.get_table_description(cursor, table)]
        constraints = connection.introspection.get_constraints(cursor, table)
    assert "club_id" in columns
    for name, constraint in constraints.items():
        keyed = constraint["unique"] or constraint["index"]
        if not keyed or constraint["columns"] == ["id"]:
            continue  # not a key, or the surrogate id
        if (table, tuple(constraint["columns"])) in EXEMPT_INDEXES:
            continue
        assert constraint["columns"][0] == "club_id", (table, name, constraint["columns"])
