"""The project's ``JSONField`` (``loyalty.db_decoding``) reads every stored text as Django's
field does: the same values, and the same answer for text that is not one JSON value; and
``value_rows`` reads the rows ``list()`` reads."""

from __future__ import annotations

from typing import Any

import pytest
from django.db import connection, models
from django.db.models import F, QuerySet
from django.db.models.fields.json import KeyTransform

from groups.models import MembersGroup
from loyalty.db import InArray
from loyalty.db_decoding import CompiledRows, value_rows
from loyalty.models import Club
from members.models import Member
from members.selectors import MEMBER_COLUMNS
from tests.factories import ClubFactory, MemberFactory

TEXTS = [
    "{}",
    "[]",
    '{"a": 1, "b": [1, 2.5, -0.0, 1e-07, 12345678901234567890123], "c": {"d": null}}',
    '{"name": "Åse \\u00f8\\ud83d\\ude00 \\u2028", "ok": true, "no": false}',
    '"a string"',
    "17",
    "1.0",
    "null",
    ' {"leading": "space"}',
    '{"trailing": "space"} ',
    '{"a": 1} {"b": 2}',
    "not json",
    "",
    '{"unterminated": ',
    '"unterminated',
    '{"a": 1,}',
    "[1 2]",
    "Bob",
]


@pytest.mark.parametrize("text", TEXTS)
def test_a_stored_text_reads_as_djangos_field_reads_it(text: str) -> None:
    ours = Member._meta.get_field("properties")
    djangos = models.JSONField()
    expected: Any = djangos.from_db_value(text, None, connection)
    read = ours.from_db_value(text, None, connection)  # type: ignore[attr-defined]
    assert read == expected
    assert type(read) is type(expected)


def test_sql_null_reads_as_none() -> None:
    ours = Member._meta.get_field("properties")
    assert ours.from_db_value(None, None, connection) is None  # type: ignore[attr-defined]


@pytest.mark.django_db
def test_value_rows_are_the_rows_django_reads() -> None:
    club: Club = ClubFactory()
    for properties in [
        {"a": 1, "b": [1, 2.5, -0.0, 1e-07, 12345678901234567890123], "c": {"d": None}},
        {"a": "Åse \u00f8\U0001f600 \u2028", "ok": True},
        {},
    ]:
        MemberFactory(club=club, properties=properties)
    members = Member.objects.filter(club=club).order_by("pk")
    querysets: list[QuerySet[Any, Any]] = [
        members.values(*MEMBER_COLUMNS),
        members.values("id", "properties").annotate(a=KeyTransform("a", "properties")),
        # Every value there (a number, a string): PostgreSQL's column parses as one array.
        members.filter(properties__has_key="a").values(a=KeyTransform("a", "properties")),
        members.values("id", "email", "created_at")[1:3],
        members.values_list("id", "properties"),
        members.values("id").filter(InArray(F("pk"), [])),
        members.filter(pk__in=[]).values(*MEMBER_COLUMNS),
        members,
        MembersGroup.objects.filter(club=club).values("id", "audience__conditions", "created_at"),
    ]
    for rows in querysets:
        # repr: the same types too (1 and 1.0, -0.0 and 0.0 compare equal).
        assert repr(value_rows(rows)) == repr(list(rows))


@pytest.mark.django_db
def test_a_compiled_lookup_reads_what_its_queryset_reads_on_every_call() -> None:
    clubs: list[Club] = [ClubFactory(), ClubFactory()]
    members = [MemberFactory(club=club, properties={"n": n}) for n, club in enumerate(clubs * 2)]
    MemberFactory(club=clubs[0], properties={})

    def query(pk: int, club_id: int) -> QuerySet[Member, dict[str, Any]]:
        # The ids' places in the SQL are not their order here; "n" is a constant.
        return (
            Member.objects.filter(club_id=club_id, properties__has_key="n")
            .filter(pk=pk)
            .values(*MEMBER_COLUMNS)
        )

    lookup = CompiledRows(Member, 2, query)
    for member in Member.objects.all():
        for club in clubs:
            assert repr(lookup(member.pk, club.pk)) == repr(list(query(member.pk, club.pk)))
    assert lookup(members[0].pk, clubs[0].pk)[0]["properties"] == {"n": 0}
    assert lookup(members[0].pk, clubs[1].pk) == []


@pytest.mark.django_db
def test_a_compiled_lookup_binds_a_list_of_ids_as_its_array() -> None:
    clubs: list[Club] = [ClubFactory(), ClubFactory()]
    members = [MemberFactory(club=club) for club in clubs * 3]

    def query(club_id: int, ids: list[int]) -> QuerySet[Member, dict[str, Any]]:
        return (
            Member.objects.filter(InArray(F("club_id"), [club_id]))
            .filter(InArray(F("pk"), ids))
            .order_by("pk")
            .values(*MEMBER_COLUMNS)
        )

    lookup = CompiledRows(Member, 2, query, arrays=(1,))
    for ids in ([], [members[0].pk], [m.pk for m in members], [members[5].pk, members[2].pk]):
        for club in clubs:
            assert repr(lookup(club.pk, ids)) == repr(list(query(club.pk, ids)))
    assert [row["id"] for row in lookup(clubs[1].pk, [m.pk for m in members])] == [
        m.pk for m in members[1::2]
    ]
