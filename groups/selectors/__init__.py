"""Reads over members groups beyond one queryset method, one module per question.

- ``group_members``: who is in a group (pages, now or at a moment, and how many);
- ``sorted_members``: a page of a group's members sorted by member fields;
- ``member_groups``: which groups a member is in, and the groups staff choose from;
- ``history``: a group's size over time, its joins and leaves, its events;
- ``rules``: a group's rule explained for a member or in words, the groups it reads or is
  read by, and the groups a rule may name (the admin's rule builder).

Callers import the package (``from groups import selectors``).
"""

from groups.selectors.group_members import (
    MembersPage,
    filtered_group_members_count,
    find_members,
    group_members_count_at,
    group_members_page,
    group_row,
    in_group,
    members_with_join_times,
    paged_group,
    stored_members_total,
)
from groups.selectors.history import (
    IntervalStats,
    group_size_history,
    group_stats,
    history_page,
    latest_events,
)
from groups.selectors.member_groups import (
    group_choices,
    groups_counts_of_members,
    groups_of_member,
    groups_of_members,
    memberships_of_member,
)
from groups.selectors.rules import (
    dependants_of,
    explain_membership,
    group_names,
    group_rule,
    groups_by_name,
    rule_group_choices,
    rule_words,
)
from groups.selectors.sorted_members import sorted_group_members_page

__all__ = [
    "IntervalStats",
    "MembersPage",
    "dependants_of",
    "explain_membership",
    "filtered_group_members_count",
    "find_members",
    "group_choices",
    "group_members_count_at",
    "group_members_page",
    "group_names",
    "group_row",
    "group_rule",
    "group_size_history",
    "group_stats",
    "groups_by_name",
    "groups_counts_of_members",
    "groups_of_member",
    "groups_of_members",
    "history_page",
    "in_group",
    "latest_events",
    "members_with_join_times",
    "memberships_of_member",
    "paged_group",
    "rule_group_choices",
    "rule_words",
    "sorted_group_members_page",
    "stored_members_total",
]
