"""The audience condition engine: parse (grammar), map operators (operators), compile to SQL."""

from audiences.conditions.compiler import (
    compile_conditions,
    referenced_group_ids,
    uses_relative_dates,
)
from audiences.conditions.grammar import (
    BRANCH_OPERATORS,
    And,
    ConditionError,
    Leaf,
    Node,
    Not,
    Or,
    as_condition_list,
    parse_conditions,
)

__all__ = [
    "BRANCH_OPERATORS",
    "And",
    "ConditionError",
    "Leaf",
    "Node",
    "Not",
    "Or",
    "as_condition_list",
    "compile_conditions",
    "parse_conditions",
    "referenced_group_ids",
    "uses_relative_dates",
]
