"""Conditions at the edges of the grammar, through the API: the calendar's first and last
days, group-membership emptiness, fields of a fixed type and msisdn fragments."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from rest_framework.test import APIClient

from audiences.models import Audience
from groups import services as group_services
from groups.models import MembersGroup
from loyalty.models import Club
from members.models import Member
from tests.factories import GroupFactory, MemberFactory
from tests.helpers import cond

pytestmark = pytest.mark.django_db


def previewed(api: APIClient, conditions: list[Any]) -> set[int]:
    response = api.post("audiences/preview", {"conditions": conditions})
    assert response.status_code == 200, response.json()
    assert response.json()["count"] == len(response.json()["member_ids"])
    return set(response.json()["member_ids"])


def refused(api: APIClient, conditions: list[Any]) -> Any:
    response = api.post("audiences/preview", {"conditions": conditions})
    assert response.status_code == 422
    return response.json()["details"]["conditions"]


def negated(*conditions: dict[str, Any]) -> dict[str, Any]:
    return {"operator": "not", "conditions": list(conditions)}


def said(item: Any) -> str:
    """A test id: a condition as ``field operator value``, other parameters as they are."""
    if isinstance(item, dict) and item.get("operator") == "not":
        return "not " + " ".join(said(child) for child in item["conditions"])
    if isinstance(item, dict):
        return f"{item['field']} {item['operator']} {item['value']}"
    return str(sorted(item)) if isinstance(item, set) else str(item)


# The calendar's first and last days ------------------------------------------------------


@pytest.fixture
def dated(club: Club) -> dict[str, int]:
    """Members born and created on the first and last days Python's calendar has."""
    made = {
        "first": MemberFactory(club=club, properties={"birthday": "0001-01-01"}),
        "last": MemberFactory(club=club, properties={"birthday": "9999-12-31"}),
        "now": MemberFactory(club=club, properties={"birthday": "1990-05-17"}),
        "undated": MemberFactory(club=club, properties={}),
        # Shaped like dates but not days of the calendar: they count as missing.
        "year_zero": MemberFactory(club=club, properties={"birthday": "0000-06-01"}),
        "month_13": MemberFactory(club=club, properties={"birthday": "2000-13-45"}),
        "feb_30": MemberFactory(club=club, properties={"birthday": "2023-02-30T10:00:00"}),
    }
    for name, created_at in (
        ("first", datetime(1, 1, 1, 13, tzinfo=UTC)),
        ("last", datetime(9999, 12, 31, 5, tzinfo=UTC)),
    ):
        Member.objects.filter(pk=made[name].pk).update(created_at=created_at)
    return {name: member.pk for name, member in made.items()}


EVERYONE = {"first", "last", "now", "undated", "year_zero", "month_13", "feb_30"}
CREATED_NOW = EVERYONE - {"first", "last"}
WHOLE_CALENDAR = ["0001-01-01", "9999-12-31"]

EDGE_DATE_CASES: list[tuple[dict[str, Any], set[str]]] = [
    (cond("date", "birthday", "before", "0001-01-01"), set()),
    (cond("date", "birthday", "before", "0001-01-02"), {"first"}),
    (cond("date", "birthday", "after", "9999-12-31"), set()),
    (cond("date", "birthday", "after", "9999-12-30"), {"last"}),
    (cond("date", "birthday", "eq", "0001-01-01"), {"first"}),
    (cond("date", "birthday", "eq", "9999-12-31"), {"last"}),
    (cond("date", "birthday", "between", WHOLE_CALENDAR), {"first", "last", "now"}),
    (negated(cond("date", "birthday", "before", "0001-01-01")), EVERYONE),
    (negated(cond("date", "birthday", "after", "9999-12-31")), EVERYONE),
    (cond("date", "birthday", "within_last_days", 36_600), {"now"}),
    (cond("date", "birthday", "more_than_days_ago", 36_600), {"first"}),
    (cond("date", "birthday", "anniversary_within_days", 366), {"first", "last", "now"}),
    (cond("date", "created_at", "before", "0001-01-01"), set()),
    (cond("date", "created_at", "before", "0001-01-02"), {"first"}),
    (cond("date", "created_at", "after", "9999-12-31"), set()),
    (cond("date", "created_at", "after", "9999-12-30"), {"last"}),
    (cond("date", "created_at", "eq", "0001-01-01"), {"first"}),
    (cond("date", "created_at", "eq", "9999-12-31"), {"last"}),
    (cond("date", "created_at", "between", WHOLE_CALENDAR), EVERYONE),
    (negated(cond("date", "created_at", "after", "9999-12-31")), EVERYONE),
    (cond("date", "created_at", "within_last_days", 36_600), CREATED_NOW),
    (cond("date", "created_at", "more_than_days_ago", 36_600), {"first"}),
    (cond("date", "updated_at", "between", WHOLE_CALENDAR), EVERYONE),
]


@pytest.mark.parametrize(("condition", "expected"), EDGE_DATE_CASES, ids=said)
def test_the_calendars_first_and_last_days_are_ordinary_dates(
    api: APIClient, dated: dict[str, int], condition: dict[str, Any], expected: set[str]
) -> None:
    assert previewed(api, [condition]) == {dated[name] for name in expected}


def test_the_anniversary_of_every_valid_date_comes_within_a_year(
    api: APIClient, dated: dict[str, int]
) -> None:
    anniversary = cond("date", "created_at", "anniversary_within_days", 366)
    assert previewed(api, [anniversary]) == set(dated.values())


# Zones of fixed offsets (no local mean time in year 1) where the calendar's first or last
# midnight is not a datetime Python holds in UTC.
ZONE_CASES: list[tuple[str, dict[str, Any], set[str]]] = [
    # 0001-01-01 13:00 UTC is 0001-01-02 03:00 at UTC+14.
    ("Etc/GMT-14", cond("date", "created_at", "eq", "0001-01-01"), set()),
    ("Etc/GMT-14", cond("date", "created_at", "eq", "0001-01-02"), {"first"}),
    ("Etc/GMT-14", cond("date", "created_at", "before", "0001-01-02"), set()),
    ("Etc/GMT-14", cond("date", "created_at", "eq", "9999-12-31"), {"last"}),
    ("Etc/GMT-14", cond("date", "created_at", "between", WHOLE_CALENDAR), EVERYONE),
    # 9999-12-31 05:00 UTC is 9999-12-30 17:00 at UTC-12.
    ("Etc/GMT+12", cond("date", "created_at", "eq", "0001-01-01"), {"first"}),
    ("Etc/GMT+12", cond("date", "created_at", "eq", "9999-12-31"), set()),
    ("Etc/GMT+12", cond("date", "created_at", "eq", "9999-12-30"), {"last"}),
    ("Etc/GMT+12", cond("date", "created_at", "after", "9999-12-30"), set()),
    ("Etc/GMT+12", cond("date", "created_at", "between", WHOLE_CALENDAR), EVERYONE),
]


@pytest.mark.parametrize(("tz", "condition", "expected"), ZONE_CASES, ids=said)
def test_the_calendars_edges_are_days_of_the_clubs_time_zone(
    api: APIClient,
    club: Club,
    dated: dict[str, int],
    tz: str,
    condition: dict[str, Any],
    expected: set[str],
) -> None:
    Club.objects.filter(pk=club.pk).update(timezone=tz)
    assert previewed(api, [condition]) == {dated[name] for name in expected}


# Group-membership emptiness --------------------------------------------------------------


def test_every_member_is_in_some_group_from_the_moment_it_is_created(
    api: APIClient, club: Club
) -> None:
    some = cond("array", "members_group_ids", "not_empty")
    none = cond("array", "members_group_ids", "empty")
    rules = {
        "some": [some],
        "none": [none],
        "not some": [negated(some)],
        "not none": [negated(none)],
    }
    group_ids = {}
    for name, rule in rules.items():
        response = api.post("members_groups", {"name": name, "audience_conditions": rule})
        assert response.status_code == 201, response.json()
        group_ids[name] = response.json()["id"]

    created = api.post("members", {"email": "ann@example.com"})

    assert created.status_code == 201
    ann = created.json()["id"]
    joined = {g["id"] for g in api.get(f"members/{ann}/members_groups").json()["members_groups"]}
    assert joined >= {group_ids["some"], group_ids["not none"]}
    assert not joined & {group_ids["none"], group_ids["not some"]}
    counts = {
        name: api.get(f"members_groups/{pk}").json()["members_count"]
        for name, pk in group_ids.items()
    }
    assert counts == {"some": 1, "none": 0, "not some": 0, "not none": 1}
    assert {name: previewed(api, rule) for name, rule in rules.items()} == {
        "some": {ann},
        "none": set(),
        "not some": set(),
        "not none": {ann},
    }


# Fields of a fixed type ------------------------------------------------------------------

FIXED_TYPES = [
    ("first_name", "boolean", True, "string"),
    ("last_name", "number", 1, "string"),
    ("gender", "array", ["f"], "string"),
    ("language", "date", "2024-01-01", "string"),
    ("interests", "string", "golf", "array"),
    ("birthday", "number", 1, "date"),
    ("birthday", "string", "1990-05-17", "date"),
]


@pytest.mark.parametrize(("field", "type_", "value", "expected"), FIXED_TYPES)
def test_a_property_of_a_fixed_type_is_refused_under_another_type(
    api: APIClient, field: str, type_: str, value: Any, expected: str
) -> None:
    operator = {"boolean": "eq", "number": "gt", "array": "any", "date": "eq", "string": "eq"}
    wrong = cond(type_, field, operator[type_], value)
    mismatch = {"field": [{"error": "type_mismatch", "options": {"expected": expected}}]}

    flat = refused(api, [cond("string", "email", "present"), wrong])
    nested = refused(api, [{"operator": "or", "conditions": [wrong]}])
    group = api.post("members_groups", {"name": "Typed", "audience_conditions": [wrong]})

    assert flat == {"1": mismatch}
    assert nested == {"0": {"conditions": {"0": mismatch}}}
    assert group.status_code == 422
    assert group.json()["details"] == {"audience_conditions": {"0": mismatch}}


# Msisdn fragments ------------------------------------------------------------------------


@pytest.fixture
def phones(club: Club) -> dict[str, int]:
    made = {
        "ann": MemberFactory(club=club, msisdn="+47 407 69 126"),
        "bob": MemberFactory(club=club, msisdn="4791234567"),
        "cid": MemberFactory(club=club, msisdn="4512340047"),
        "dan": MemberFactory(club=club, msisdn=None),
    }
    return {name: member.pk for name, member in made.items()}


MSISDN_CASES: list[tuple[str, str, set[str]]] = [
    ("starts_with", "+47", {"ann", "bob"}),
    ("starts_with", "0047 40", {"ann"}),
    ("starts_with", "+47 (407) 69-1", {"ann"}),
    ("starts_with", "47", {"ann", "bob"}),
    ("starts_with", "+4", {"ann", "bob", "cid"}),
    ("match", "+47", {"ann", "bob", "cid"}),
    ("match", "(407) 69-126", {"ann"}),
    ("match", "0047", {"cid"}),
    ("match", "40 047", {"cid"}),
]


@pytest.mark.parametrize(("operator", "value", "expected"), MSISDN_CASES)
def test_msisdn_fragments_are_compared_with_the_stored_digits(
    api: APIClient, phones: dict[str, int], operator: str, value: str, expected: set[str]
) -> None:
    assert previewed(api, [cond("string", "msisdn", operator, value)]) == {
        phones[name] for name in expected
    }


@pytest.mark.parametrize(
    ("operator", "value"),
    [
        ("starts_with", "+"),
        ("starts_with", "00"),
        ("match", " ( ) "),
        ("match", "47a"),
        ("starts_with", "x"),
    ],
)
def test_an_msisdn_fragment_without_only_digits_is_refused(
    api: APIClient, operator: str, value: str
) -> None:
    details = refused(api, [cond("string", "msisdn", operator, value)])
    assert details == {"0": {"value": [{"error": "not_msisdn_digits", "options": {}}]}}


# Membership in every one of many groups --------------------------------------------------


@pytest.fixture
def in_three(club: Club) -> tuple[list[int], dict[str, int]]:
    """Three manual groups: ann is in all of them, bob in two, cid in none."""
    groups: list[MembersGroup] = [GroupFactory(club=club) for _ in range(3)]
    made = {name: MemberFactory(club=club).pk for name in ("ann", "bob", "cid")}
    for group, names in zip(groups, [("ann", "bob"), ("ann", "bob"), ("ann",)], strict=True):
        ids = [made[name] for name in names]
        group_services.add_member_ids(group=group, member_ids=ids, source="api")
    return [group.pk for group in groups], made


def test_all_of_several_groups_holds_for_members_of_every_one(
    api: APIClient, in_three: tuple[list[int], dict[str, int]]
) -> None:
    groups, made = in_three

    every = previewed(api, [cond("array", "members_group_ids", "all", groups)])
    first_two = previewed(api, [cond("array", "members_group_ids", "all", groups[:2])])
    repeated = previewed(api, [cond("array", "members_group_ids", "all", [groups[0]] * 3)])
    none_of = previewed(api, [negated(cond("array", "members_group_ids", "all", groups))])

    assert every == {made["ann"]}
    assert first_two == {made["ann"], made["bob"]}
    assert repeated == {made["ann"], made["bob"]}
    assert none_of == {made["bob"], made["cid"]}


def test_all_of_a_thousand_groups_compiles_on_every_database(
    api: APIClient, club: Club, in_three: tuple[list[int], dict[str, int]]
) -> None:
    """1,000 values (the grammar's most) once nested the SQL 1,000 deep: a 500 on SQLite."""
    groups, _made = in_three
    # Groups of the club (a rule may name no other), made in one statement: 997 more.
    audience = Audience.objects.create(club_id=club.pk, name="Others", made_for_group=True)
    others = [
        group.pk
        for group in MembersGroup.objects.bulk_create(
            MembersGroup(club_id=club.pk, name=f"Other {n}", audience=audience) for n in range(997)
        )
    ]
    rule = [cond("array", "members_group_ids", "all", [*groups, *others])]

    preview = api.post("audiences/preview", {"conditions": rule})
    group = api.post(
        "members_groups",
        {
            "name": "Everywhere",
            "audience_conditions": [cond("array", "members_group_ids", "all", groups)],
        },
    )

    assert preview.status_code == 200, preview.json()
    assert preview.json()["count"] == 0
    assert group.status_code == 201, group.json()
    assert group.json()["members_count"] == 1


# Shapes the platform's clients send ------------------------------------------------------


def test_a_single_condition_object_counts_as_a_one_element_array(
    api: APIClient, club: Club
) -> None:
    ann = MemberFactory(club=club, email="ann@gold.example").pk
    MemberFactory(club=club, email="bob@plain.example")
    gold = cond("string", "email", "match", "@gold.")

    preview = api.post("audiences/preview", {"conditions": gold})
    nested = api.post("audiences/preview", {"conditions": {"operator": "or", "conditions": gold}})
    group = api.post("members_groups", {"name": "Gold", "audience_conditions": gold})
    audience = api.post("audiences", {"name": "Gold", "conditions": gold})

    assert preview.json()["member_ids"] == nested.json()["member_ids"] == [ann]
    assert group.status_code == 201, group.json()
    assert (group.json()["audience_conditions"], group.json()["members_count"]) == ([gold], 1)
    assert audience.status_code == 201, audience.json()
    assert audience.json()["conditions"] == [gold]


@pytest.mark.parametrize("key", ["tier\n", "tier\r\n", "\ntier", "ti er"])
def test_a_property_key_must_be_a_whole_identifier(api: APIClient, key: str) -> None:
    """A pattern ending in "$" let a trailing newline through."""
    details = refused(api, [cond("string", key, "eq", "gold")])
    consent = refused(
        api,
        [
            {
                "condition_group": "consents",
                "type": "boolean",
                "field": key,
                "operator": "eq",
                "value": True,
            }
        ],
    )

    assert details == consent == {"0": {"field": [{"error": "invalid_key", "options": {}}]}}
