"""The rule renderer: every operator of the grammar in plain English, nesting with parentheses."""

from __future__ import annotations

from typing import Any

import pytest

from audiences.conditions import parse_conditions
from audiences.conditions.grammar import OPERATORS
from audiences.describe import describe_conditions
from tests.helpers import cond

NAMES = {1: "Red", 2: "Blue", 3: "Green"}


def say(*conditions: dict[str, Any]) -> str:
    return describe_conditions(parse_conditions(list(conditions)), NAMES)


def consent(name: str, value: bool) -> dict[str, Any]:
    return {
        "condition_group": "consents",
        "type": "boolean",
        "field": f"consents.{name}",
        "operator": "eq",
        "value": value,
    }


CASES = [
    # array: group references, by name
    (cond("array", "members_group_ids", "any", [1]), "member of group 'Red'"),
    (cond("array", "members_group_ids", "any", [1, 2]), "member of any of groups 'Red', 'Blue'"),
    (cond("array", "members_group_ids", "all", [1, 2]), "member of all of groups 'Red', 'Blue'"),
    (cond("array", "members_group_ids", "none", [1]), "not member of group 'Red'"),
    (cond("array", "members_group_ids", "none", [1, 3]), "member of none of groups 'Red', 'Green'"),
    (cond("array", "members_group_ids", "empty"), "member of no group"),
    (cond("array", "members_group_ids", "not_empty"), "member of some group"),
    (cond("array", "members_group_ids", "any", [99]), "member of group #99 (no such group)"),
    # array: other fields
    (cond("array", "interests", "any", ["ski", 7]), "interests include any of 'ski', 7"),
    (cond("array", "subunit_ids", "all", [1, 2]), "subunits include all of 1, 2"),
    (cond("array", "favorite_stores", "none", [5]), "favourite stores include none of 5"),
    (cond("array", "interests", "empty"), "interests is empty"),
    (cond("array", "interests", "not_empty"), "interests is not empty"),
    # string
    (cond("string", "first_name", "eq", "Ola"), "first name is 'Ola'"),
    (cond("string", "email", "not_eq", "a@b.no"), "email is not 'a@b.no'"),
    (cond("string", "gender", "in", ["f", "m"]), "gender is one of 'f', 'm'"),
    (cond("string", "language", "not_in", ["no"]), "language is none of 'no'"),
    (cond("string", "first_name", "match", "Ola"), "first name contains 'Ola'"),
    (cond("string", "msisdn", "starts_with", "47"), "MSISDN starts with '47'"),
    (cond("string", "last_name", "present"), "last name is present"),
    (cond("string", "sms_status", "blank"), "SMS status is blank"),
    (cond("string", "last_name", "eq", "O'Neil"), "last name is 'O\\'Neil'"),
    # number
    (cond("number", "id", "eq", 5), "member id is 5"),
    (cond("number", "points", "not_eq", 5), "points is not 5"),
    (cond("number", "points", "gt", 1.5), "points is greater than 1.5"),
    (cond("number", "points", "gte", 10), "points is at least 10"),
    (cond("number", "points", "lt", 10), "points is less than 10"),
    (cond("number", "points", "lte", 10), "points is at most 10"),
    (cond("number", "points", "between", [1, 9]), "points is between 1 and 9"),
    # date
    (cond("date", "birthday", "eq", "2000-01-31"), "birthday is 2000-01-31"),
    (cond("date", "created_at", "before", "2024-01-01"), "creation date is before 2024-01-01"),
    (cond("date", "updated_at", "after", "2024-01-01"), "last update date is after 2024-01-01"),
    (
        cond("date", "birthday", "between", ["1990-01-01", "1999-12-31"]),
        "birthday is between 1990-01-01 and 1999-12-31",
    ),
    (
        cond("date", "created_at", "within_last_days", 30),
        "creation date is within the last 30 days",
    ),
    (cond("date", "created_at", "within_last_days", 1), "creation date is within the last 1 day"),
    (cond("date", "created_at", "more_than_days_ago", 7), "creation date is more than 7 days ago"),
    (
        cond("date", "birthday", "anniversary_within_days", 14),
        "birthday has its anniversary within the next 14 days",
    ),
    # boolean
    (cond("boolean", "vip", "eq", True), "vip is true"),
    (cond("boolean", "vip", "eq", False), "vip is false"),
    (consent("newsletter", True), "consent 'newsletter' is given"),
    (consent("newsletter", False), "consent 'newsletter' is refused"),
]


@pytest.mark.parametrize(("condition", "words"), CASES)
def test_each_operator_reads_as_plain_english(condition: dict[str, Any], words: str) -> None:
    assert say(condition) == words


def test_the_cases_cover_every_operator_of_the_grammar() -> None:
    covered = {(condition["type"], condition["operator"]) for condition, _words in CASES}
    assert covered == {(type_, op) for type_, ops in OPERATORS.items() for op in ops}


def test_top_level_conditions_are_joined_with_and() -> None:
    assert (
        say(
            cond("string", "first_name", "match", "Ola"),
            cond("array", "members_group_ids", "any", [1]),
        )
        == "first name contains 'Ola' and member of group 'Red'"
    )


def test_an_empty_rule_is_every_member() -> None:
    assert say() == "every member of the club"


def test_or_inside_and_is_parenthesised() -> None:
    either = {
        "operator": "or",
        "conditions": [cond("number", "points", "gt", 5), cond("boolean", "vip", "eq", True)],
    }
    assert (
        say(cond("string", "first_name", "eq", "Ola"), either)
        == "first name is 'Ola' and (points is greater than 5 or vip is true)"
    )


def test_and_inside_or_is_parenthesised_and_same_connectives_are_not() -> None:
    both = {
        "operator": "and",
        "conditions": [cond("number", "points", "gt", 5), cond("boolean", "vip", "eq", True)],
    }
    also_or = {"operator": "or", "conditions": [cond("string", "gender", "eq", "f")]}
    inner_or = {"operator": "or", "conditions": [cond("string", "language", "eq", "no"), also_or]}
    tree = {"operator": "or", "conditions": [both, inner_or]}
    assert (
        say(tree)
        == "(points is greater than 5 and vip is true) or language is 'no' or gender is 'f'"
    )


def test_not_negates_all_of_its_conditions_in_parentheses() -> None:
    negated = {
        "operator": "not",
        "conditions": [
            cond("array", "members_group_ids", "any", [2]),
            {
                "operator": "or",
                "conditions": [
                    cond("string", "first_name", "blank"),
                    cond("date", "birthday", "before", "2000-01-01"),
                ],
            },
        ],
    }
    assert say(cond("string", "email", "present"), negated) == (
        "email is present and not (member of group 'Blue' and "
        "(first name is blank or birthday is before 2000-01-01))"
    )


def test_a_single_negated_condition_still_reads_unambiguously() -> None:
    negated = {"operator": "not", "conditions": [cond("string", "first_name", "eq", "Ola")]}
    assert say(negated) == "not (first name is 'Ola')"
