"""Following member changes: a member created, changed or deleted, or a batch of them,
is put in exactly the automatic groups whose rules it satisfies, in the same transaction."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo

from django.db import connection, transaction

from audiences.conditions import compile_conditions, parse_conditions
from groups import ledger
from groups.dependencies import dependency_graph, graph_of, levels
from groups.ledger import MEMBERSHIP_TABLE
from groups.models import MembersGroup
from groups.services.locking import lock_group, lock_rules
from groups.services.rules import apply_rule, rule_source
from loyalty.models import Club
from members.models import Member


@dataclass(frozen=True)
class _Rule:
    group_id: int
    system: bool
    conditions: Any
    timezone: str


def _automatic_groups(club_id: int) -> dict[int, _Rule]:
    """The club's automatic groups and their rules, read as rows: a group instance (what
    the ledger takes) is made only for a group the member joins or leaves."""
    rows = MembersGroup.objects.filter(club_id=club_id, automatic=True).values_list(
        "pk", "system", "audience__conditions", "club__timezone"
    )
    return {pk: _Rule(pk, system, conditions, tz) for pk, system, conditions, tz in rows}


@lru_cache(maxsize=4096)
def _rule_select(
    vendor: str, club_id: int, tz: str, today: date, conditions: str
) -> tuple[str, tuple[Any, ...]]:
    """``SELECT id FROM members WHERE <rule>``, compiled once per rule, day and database.

    Compiling a rule through the ORM costs about 0.3 ms of Python; a member update that
    checks 100 automatic groups would spend most of its time there without this cache.
    """
    node = parse_conditions(json.loads(conditions))
    rule = compile_conditions(node, club_id=club_id, tz=tz, today=today)
    sql, params = Member.objects.filter(rule).values("id").order_by().query.sql_with_params()
    return sql, tuple(params)


# Within the member's own transaction: no savepoint of its own.
@transaction.atomic(savepoint=False)
def refresh_memberships_for_member(*, member: Member, actor: str = "") -> None:
    """Put one member in exactly the automatic groups whose rules it satisfies.

    One query per dependency level (usually one) evaluates every rule for this member and
    reads whether it is in each group, so the cost grows with the number of automatic
    groups, never with the number of members.
    """
    lock_rules(member.club_id, exclusive=False)
    rules = _automatic_groups(member.club_id)
    if not rules:
        return
    tz = next(iter(rules.values())).timezone
    today = datetime.now(ZoneInfo(tz)).date()
    graph = graph_of((pk, rule.conditions) for pk, rule in rules.items())
    for batch in levels(graph):
        tests, params = [], []
        for group_id in batch:
            sql, rule_params = _rule_select(
                connection.vendor,
                member.club_id,
                tz,
                today,
                json.dumps(rules[group_id].conditions, sort_keys=True),
            )
            tests.append(f"EXISTS (SELECT 1 FROM ({sql}) r WHERE r.id = %s)")
            tests.append(
                f"EXISTS (SELECT 1 FROM {MEMBERSHIP_TABLE} WHERE club_id = %s "
                "AND group_id = %s AND member_id = %s)"
            )
            params.extend([*rule_params, member.pk, member.club_id, group_id, member.pk])
        with connection.cursor() as cursor:
            cursor.execute("SELECT " + ", ".join(tests), params)
            answers = cursor.fetchone()
        for index, group_id in enumerate(batch):
            matched, current = answers[2 * index], answers[2 * index + 1]
            if bool(matched) == bool(current):
                continue
            group = MembersGroup(pk=group_id, club_id=member.club_id, system=rules[group_id].system)
            if matched:
                ledger.join(group, [member.pk], source=rule_source(group), actor=actor)
            else:
                ledger.leave(group, [member.pk], source=rule_source(group), actor=actor)


@transaction.atomic
def refresh_memberships_for_members(
    *, club: Club, member_ids: Sequence[int], actor: str = "", new: bool = False
) -> None:
    """Put a batch of members in the automatic groups they belong to: one diff per group."""
    lock_rules(club.pk, exclusive=False)
    graph = dependency_graph(club.pk)
    for batch in levels(graph):
        for group_id in batch:
            group = lock_group(MembersGroup(pk=group_id, club_id=club.pk))
            apply_rule(group, actor, member_ids, new=new)


def place_new_members(*, club: Club, member_ids: Sequence[int], actor: str = "") -> None:
    """Put members created in this transaction in the automatic and system groups."""
    refresh_memberships_for_members(club=club, member_ids=member_ids, actor=actor, new=True)


@transaction.atomic
def leave_all_groups(*, member: Member, source: str, actor: str = "") -> None:
    """Take a member out of every group before it is deleted, recording each leave."""
    # Shared with other member writes, so a recomputation never adds a member being deleted.
    lock_rules(member.club_id, exclusive=False)
    ledger.leave_all_groups(member, source=source, actor=actor)
