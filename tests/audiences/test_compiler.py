"""The compiled SQL of every operator, on PostgreSQL and SQLite, against a reference evaluator."""

from __future__ import annotations

import re
from datetime import date, timedelta
from typing import Any

import pytest
from django.utils import timezone
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from audiences.conditions import compile_conditions, parse_conditions
from groups import services
from groups.models import Source
from loyalty.casefold import fold
from loyalty.models import Club
from members.models import Member
from tests.factories import ClubFactory, MemberFactory
from tests.helpers import cond

pytestmark = pytest.mark.django_db

TODAY = date(2027, 2, 26)


@pytest.fixture
def people(club: Club) -> dict[str, Member]:
    made = {
        "ann": MemberFactory(
            club=club,
            email="ann@gold.example",
            msisdn="4740769126",
            sms_status="enabled",
            properties={
                "first_name": "Ola",
                "last_name": "",
                "points": 50,
                "birthday": "1992-02-29",
                "interests": ["golf", "food"],
                "vip": True,
                "visited": "2024-05-01T10:00:00",
            },
            consents={"email_marketing": {"status": True, "updated_at": "2024-01-01"}},
            subunit_ids=[1, 2],
            favorite_stores=[7],
        ),
        "bob": MemberFactory(
            club=club,
            email="bob@plain.example",
            properties={
                "first_name": "Kari",
                "points": "50",
                "birthday": "1990-12-01",
                "interests": [],
            },
            consents={"email_marketing": {"status": False}},
        ),
        "cid": MemberFactory(club=club, email=None, msisdn="4791234567", properties={}),
        "dan": MemberFactory(
            club=club,
            email="dan@x.example",
            properties={
                "first_name": None,
                "points": 7.5,
                "birthday": "not a date",
                "interests": "golf",
            },
        ),
    }
    group = services.create_group(club=club, name="Red")
    services.add_member_ids(group=group, member_ids=[made["bob"].pk], source=Source.API)
    return made


def matching(club: Club, conditions: list[Any], today: date = TODAY) -> set[str]:
    q = compile_conditions(parse_conditions(conditions), club_id=club.pk, today=today)
    emails = Member.objects.filter(q).values_list("email", "msisdn")
    return {(email or msisdn).split("@")[0] if email else "cid" for email, msisdn in emails}


def consent(value: bool) -> dict[str, Any]:
    return {
        "condition_group": "consents",
        "type": "boolean",
        "field": "consents.email_marketing",
        "operator": "eq",
        "value": value,
    }


CASES: list[tuple[dict[str, Any], set[str]]] = [
    (cond("string", "first_name", "eq", "Ola"), {"ann"}),
    (cond("string", "first_name", "not_eq", "Ola"), {"bob", "cid", "dan"}),
    (cond("string", "first_name", "in", ["Ola", "Kari"]), {"ann", "bob"}),
    (cond("string", "first_name", "not_in", ["Ola"]), {"bob", "cid", "dan"}),
    (cond("string", "first_name", "match", "AR"), {"bob"}),
    (cond("string", "first_name", "starts_with", "ol"), {"ann"}),
    (cond("string", "first_name", "present"), {"ann", "bob"}),
    (cond("string", "last_name", "blank"), {"ann", "bob", "cid", "dan"}),
    (cond("string", "email", "eq", "ANN@gold.example"), {"ann"}),
    (cond("string", "email", "blank"), {"cid"}),
    (cond("string", "msisdn", "eq", "+47 407 69 126"), {"ann"}),
    (cond("string", "sms_status", "eq", "enabled"), {"ann"}),
    (cond("number", "points", "eq", 50), {"ann"}),
    (cond("number", "points", "not_eq", 50), {"bob", "cid", "dan"}),
    (cond("number", "points", "gt", 7.5), {"ann"}),
    (cond("number", "points", "gte", 7.5), {"ann", "dan"}),
    (cond("number", "points", "lt", 50), {"dan"}),
    (cond("number", "points", "lte", 50), {"ann", "dan"}),
    (cond("number", "points", "between", [7, 8]), {"dan"}),
    (cond("date", "birthday", "eq", "1990-12-01"), {"bob"}),
    (cond("date", "birthday", "before", "1991-01-01"), {"bob"}),
    (cond("date", "birthday", "after", "1991-01-01"), {"ann"}),
    (cond("date", "birthday", "between", ["1990-01-01", "1992-02-29"]), {"ann", "bob"}),
    (cond("date", "visited", "eq", "2024-05-01"), {"ann"}),
    (cond("date", "birthday", "within_last_days", 365 * 40), {"ann", "bob"}),
    (cond("date", "birthday", "more_than_days_ago", 365 * 36), {"bob"}),
    # Feb 29 birthdays are celebrated on Feb 28 in years without one (2027).
    (cond("date", "birthday", "anniversary_within_days", 2), {"ann"}),
    (cond("date", "birthday", "anniversary_within_days", 1), set()),
    (consent(True), {"ann"}),
    (consent(False), {"bob"}),
    (cond("boolean", "vip", "eq", True), {"ann"}),
    (cond("boolean", "vip", "eq", False), set()),
    (cond("array", "interests", "any", ["golf", "chess"]), {"ann"}),
    (cond("array", "interests", "all", ["golf", "food"]), {"ann"}),
    (cond("array", "interests", "all", ["golf", "chess"]), set()),
    (cond("array", "interests", "none", ["golf"]), {"bob", "cid", "dan"}),
    (cond("array", "interests", "empty"), {"bob", "cid", "dan"}),
    (cond("array", "interests", "not_empty"), {"ann"}),
    (cond("array", "subunit_ids", "any", [2, 3]), {"ann"}),
    (cond("array", "favorite_stores", "empty"), {"bob", "cid", "dan"}),
    (cond("number", "id", "gt", 0), {"ann", "bob", "cid", "dan"}),
]


@pytest.mark.parametrize(("condition", "expected"), CASES, ids=lambda c: repr(c)[:60])
def test_each_operator_selects_exactly_the_expected_members(
    club: Club, people: dict[str, Member], condition: dict[str, Any], expected: set[str]
) -> None:
    assert matching(club, [condition]) == expected


def test_group_membership_operators_use_membership_rows(
    club: Club, people: dict[str, Member]
) -> None:
    red = club.membersgroup_set.get(name="Red")
    assert matching(club, [cond("array", "members_group_ids", "any", [red.pk])]) == {"bob"}
    assert matching(club, [cond("array", "members_group_ids", "none", [red.pk])]) == {
        "ann",
        "cid",
        "dan",
    }
    assert (
        matching(club, [cond("array", "members_group_ids", "all", [red.pk, red.pk + 999])]) == set()
    )


def test_created_at_is_compared_in_the_clubs_days(club: Club, people: dict[str, Member]) -> None:
    today = timezone.now().date()
    everyone = {"ann", "bob", "cid", "dan"}
    assert matching(club, [cond("date", "created_at", "eq", today.isoformat())], today) == everyone
    assert matching(club, [cond("date", "created_at", "within_last_days", 0)], today) == everyone
    assert matching(club, [cond("date", "created_at", "more_than_days_ago", 0)], today) == set()
    assert matching(club, [cond("date", "created_at", "before", today.isoformat())], today) == set()
    later = (today + timedelta(days=1)).isoformat()
    assert matching(club, [cond("date", "updated_at", "before", later)], today) == everyone


def test_nested_nodes_combine_and_negate(club: Club, people: dict[str, Member]) -> None:
    either = {
        "operator": "or",
        "conditions": [
            cond("string", "first_name", "eq", "Ola"),
            cond("number", "points", "lt", 10),
        ],
    }
    assert matching(club, [either]) == {"ann", "dan"}
    assert matching(club, [{"operator": "not", "conditions": [either]}]) == {"bob", "cid"}
    assert matching(club, [either, cond("string", "email", "match", "gold")]) == {"ann"}


def test_another_clubs_members_never_match(club: Club, people: dict[str, Member]) -> None:
    other = ClubFactory()
    MemberFactory(club=other, properties={"first_name": "Ola"})
    assert matching(club, [cond("string", "first_name", "eq", "Ola")]) == {"ann"}


# A property-based check against a plain Python evaluator of the documented semantics.

# Letters beyond ASCII, whose case both databases fold alike (loyalty.casefold).
NAMES = ["Ola", "Kari", "ola", "", "ØRJAN", "Straße", "ΣΟΦΊΑ"]
scalars = st.one_of(st.sampled_from(NAMES), st.integers(-3, 3), st.none())
properties = st.fixed_dictionaries(
    {},
    optional={
        "first_name": st.one_of(st.sampled_from(NAMES), st.integers(0, 3), st.none()),
        "points": st.one_of(
            st.integers(-3, 3), st.floats(-3, 3, allow_nan=False), st.sampled_from(["1", "x"])
        ),
        "birthday": st.one_of(
            st.dates(date(1990, 1, 1), date(1993, 12, 31)).map(date.isoformat),
            # Not days of the calendar: they count as missing.
            st.sampled_from(["soon", "1991-02-29", "1990-13-01", "1992-04-31T10:00"]),
        ),
        "tags": st.one_of(st.lists(st.sampled_from(["a", "b", 1, 2]), max_size=3), scalars),
        "vip": st.one_of(st.booleans(), st.sampled_from([0, "true"])),
    },
)

leaves = st.one_of(
    st.builds(
        lambda o, v: cond("string", "first_name", o, v),
        st.sampled_from(["eq", "not_eq", "match", "starts_with"]),
        st.sampled_from(["Ola", "ol", "K", "ørjan", "STRASSE", "σοφία"]),
    ),
    st.builds(lambda o: cond("string", "first_name", o), st.sampled_from(["present", "blank"])),
    st.builds(
        lambda o, v: cond("number", "points", o, v),
        st.sampled_from(["eq", "not_eq", "gt", "gte", "lt", "lte"]),
        st.integers(-3, 3),
    ),
    st.builds(
        lambda o, v: cond("date", "birthday", o, v),
        st.sampled_from(["eq", "before", "after"]),
        st.dates(date(1990, 1, 1), date(1993, 12, 31)).map(date.isoformat),
    ),
    st.builds(
        lambda o, v: cond("array", "tags", o, v),
        st.sampled_from(["any", "all", "none"]),
        st.lists(st.sampled_from(["a", "b", 1, 2]), min_size=1, max_size=2),
    ),
    st.builds(lambda o: cond("array", "tags", o), st.sampled_from(["empty", "not_empty"])),
    st.builds(lambda v: cond("boolean", "vip", "eq", v), st.booleans()),
)
trees = st.recursive(
    leaves,
    lambda children: st.builds(
        lambda op, items: {"operator": op, "conditions": items},
        st.sampled_from(["and", "or", "not"]),
        st.lists(children, min_size=1, max_size=3),
    ),
    max_leaves=6,
)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _same_json(a: Any, b: Any) -> bool:
    """JSON equality: booleans are not numbers, 1 equals 1.0, strings are not numbers."""
    if _is_number(a) and _is_number(b):
        return bool(a == b)
    return type(a) is type(b) and a == b


def _is_day(text: str) -> bool:
    """Whether ``text`` starts with a day of the calendar (``1991-02-29`` does not)."""
    try:
        date.fromisoformat(text[:10])
    except ValueError:
        return False
    return True


def evaluate(node: dict[str, Any], props: dict[str, Any]) -> bool:
    """The documented semantics, in plain Python."""
    if node.get("operator") in ("and", "or", "not"):
        results = [evaluate(child, props) for child in node["conditions"]]
        return {"and": all, "or": any, "not": lambda r: not all(r)}[node["operator"]](results)
    op, value, raw = node["operator"], node["value"], props.get(node["field"])
    negated = {"not_eq": "eq", "none": "any", "blank": "present", "empty": "not_empty"}
    if op in negated:
        return not evaluate({**node, "operator": negated[op]}, props)
    if node["type"] == "string":
        text = raw if isinstance(raw, str) else None
        if text is None:
            return False
        return {
            "eq": text == value,
            "match": fold(value) in fold(text) if value else False,
            "starts_with": fold(text).startswith(fold(value)) if value else False,
            "present": text != "",
        }[op]
    if node["type"] == "number":
        if not _is_number(raw):
            return False
        return {
            "eq": raw == value,
            "gt": raw > value,
            "gte": raw >= value,
            "lt": raw < value,
            "lte": raw <= value,
        }[op]
    if node["type"] == "date":
        if not (isinstance(raw, str) and re.match(r"^\d{4}-\d{2}-\d{2}", raw) and _is_day(raw)):
            return False
        day = raw[:10]
        return {"eq": day == value, "before": day < value, "after": day > value}[op]
    if node["type"] == "boolean":
        return isinstance(raw, bool) and raw == value
    if not isinstance(raw, list):
        return False
    if op == "not_empty":
        return len(raw) > 0
    found = [any(_same_json(item, wanted) for item in raw) for wanted in value]
    return any(found) if op == "any" else all(found)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(population=st.lists(properties, min_size=1, max_size=6), tree=trees)
def test_compiled_sql_selects_what_the_reference_evaluator_selects(
    db: None, population: list[dict[str, Any]], tree: dict[str, Any]
) -> None:
    club = ClubFactory()
    members = Member.objects.bulk_create(
        Member(club=club, email=f"m{i}@example.com", properties=props)
        for i, props in enumerate(population)
    )
    q = compile_conditions(parse_conditions([tree]), club_id=club.pk, today=TODAY)
    selected = set(Member.objects.filter(q).values_list("pk", flat=True))
    expected = {m.pk for m, props in zip(members, population, strict=True) if evaluate(tree, props)}
    assert selected == expected
