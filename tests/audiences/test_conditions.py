"""The condition grammar: what parses, and the error details of what does not (no database)."""

from __future__ import annotations

from typing import Any

import pytest

from audiences.conditions import And, ConditionError, Leaf, Not, Or, parse_conditions
from audiences.conditions.grammar import MAX_DEPTH, MAX_NODES
from tests.helpers import cond


def errors(data: Any) -> Any:
    with pytest.raises(ConditionError) as excinfo:
        parse_conditions(data)
    return excinfo.value.details


def test_the_platforms_flat_array_is_an_and_of_leaves() -> None:
    node = parse_conditions([cond("array", "members_group_ids", "any", [6813])])
    assert node == And((Leaf("member_properties", "array", "members_group_ids", "any", (6813,)),))


def test_nested_or_and_not_nodes_parse() -> None:
    node = parse_conditions(
        [
            {
                "operator": "or",
                "conditions": [
                    cond("string", "first_name", "eq", "Ola"),
                    {"operator": "not", "conditions": [cond("number", "points", "gt", 5)]},
                ],
            }
        ]
    )
    assert node == And(
        (
            Or(
                (
                    Leaf("member_properties", "string", "first_name", "eq", "Ola"),
                    Not(And((Leaf("member_properties", "number", "points", "gt", 5),))),
                )
            ),
        )
    )


def test_parsing_never_mutates_its_input() -> None:
    data = [cond("array", "interests", "any", ["golf"])]
    snapshot = repr(data)
    parse_conditions(data)
    assert repr(data) == snapshot


def test_an_empty_array_matches_everyone() -> None:
    assert parse_conditions([]) == And(())


def test_consents_take_a_name_with_or_without_the_prefix() -> None:
    for field in ("consents.email_marketing", "email_marketing"):
        node = parse_conditions(
            [
                {
                    "condition_group": "consents",
                    "type": "boolean",
                    "field": field,
                    "operator": "eq",
                    "value": True,
                }
            ]
        )
        assert node == And((Leaf("consents", "boolean", "email_marketing", "eq", True),))


@pytest.mark.parametrize(
    ("condition", "expected"),
    [
        (
            {**cond("string", "first_name", "eq", "x"), "type": "text"},
            {
                "type": [
                    {
                        "error": "inclusion",
                        "options": {"allowed": ["array", "string", "number", "date", "boolean"]},
                    }
                ]
            },
        ),
        (
            cond("number", "points", "match", 1),
            {
                "operator": [
                    {
                        "error": "inclusion",
                        "options": {
                            "allowed": ["eq", "not_eq", "gt", "gte", "lt", "lte", "between"]
                        },
                    }
                ]
            },
        ),
        (
            cond("string", "created_at", "eq", "x"),
            {"field": [{"error": "type_mismatch", "options": {"expected": "date"}}]},
        ),
        (
            cond("string", "bad key!", "eq", "x"),
            {"field": [{"error": "invalid_key", "options": {}}]},
        ),
        (
            cond("number", "points", "gt", "5"),
            {"value": [{"error": "not_a_number", "options": {}}]},
        ),
        (
            cond("number", "points", "gt", True),
            {"value": [{"error": "not_a_number", "options": {}}]},
        ),
        (
            cond("number", "points", "between", [9, 1]),
            {"value": [{"error": "reversed_range", "options": {}}]},
        ),
        (
            cond("date", "birthday", "eq", "2024-02-30"),
            {"value": [{"error": "not_a_date", "options": {"format": "YYYY-MM-DD"}}]},
        ),
        (
            cond("date", "birthday", "anniversary_within_days", 400),
            {"value": [{"error": "not_a_day_count", "options": {"min": 0, "max": 366}}]},
        ),
        (
            cond("array", "members_group_ids", "any", [1, "2"]),
            {"value": {"1": [{"error": "not_an_integer", "options": {}}]}},
        ),
        (
            cond("array", "interests", "any", []),
            {"value": [{"error": "not_a_non_empty_array", "options": {}}]},
        ),
        (
            cond("boolean", "vip", "eq", "yes"),
            {"value": [{"error": "not_a_boolean", "options": {}}]},
        ),
        (
            {**cond("boolean", "x", "eq", True), "condition_group": "consents", "type": "string"},
            {"field": [{"error": "type_mismatch", "options": {"expected": "boolean"}}]},
        ),
        ("not an object", [{"error": "not_an_object", "options": {}}]),
    ],
)
def test_a_bad_condition_is_reported_at_its_index(condition: Any, expected: Any) -> None:
    assert errors([cond("string", "first_name", "eq", "Ola"), condition]) == {"1": expected}


def test_every_problem_is_reported_at_once() -> None:
    details = errors([cond("number", "points", "gt", "x"), cond("string", "f", "eq", 1)])
    assert set(details) == {"0", "1"}


def test_errors_inside_nested_nodes_point_through_them() -> None:
    details = errors([{"operator": "or", "conditions": [cond("number", "points", "gt", "x")]}])
    assert details == {
        "0": {"conditions": {"0": {"value": [{"error": "not_a_number", "options": {}}]}}}
    }


def test_not_an_array_is_refused() -> None:
    assert errors({"field": "x"}) == [{"error": "not_an_array", "options": {}}]


def test_too_deep_and_too_large_trees_are_refused() -> None:
    deep: Any = cond("string", "first_name", "eq", "x")
    for _ in range(MAX_DEPTH + 1):
        deep = {"operator": "and", "conditions": [deep]}
    assert "too_deep" in repr(errors([deep]))
    wide = [cond("string", "first_name", "eq", "x")] * (MAX_NODES + 1)
    assert errors(wide)[str(MAX_NODES)] == [
        {"error": "too_many_conditions", "options": {"max": MAX_NODES}}
    ]
