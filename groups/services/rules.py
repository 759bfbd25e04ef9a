"""Rules and recomputation: automatic groups kept equal to their rule, as diffs.

Only the rows that change are written (``apply_rule``), and the groups that depend on a
changed group follow, in dependency order, for the members concerned only
(``propagate``). A club too large to recompute within the request is recomputed by a
background task.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from functools import partial
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Exists, F, OuterRef, Q, QuerySet
from django.utils import timezone

from audiences.conditions import (
    ConditionError,
    Node,
    compile_conditions,
    parse_conditions,
    referenced_group_ids,
    uses_relative_dates,
)
from audiences.models import Audience
from audiences.services import parse_or_refuse
from groups import ledger
from groups.dependencies import check_acyclic, dependants_in_order, dependency_graph, levels
from groups.models import ALL_MEMBERS_KEY, MembersGroup, Membership, Source
from groups.services.locking import lock_group, lock_rules
from loyalty.background import enqueue_after_commit
from loyalty.db import InArray
from members.models import Member


@dataclass(frozen=True)
class MembershipDiff:
    """The members a recomputation added to and removed from a group."""

    joined: list[int]
    left: list[int]


def _rule(group: MembersGroup) -> Q:
    node = parse_conditions(group.audience.conditions)
    return compile_conditions(node, club_id=group.club_id, tz=group.club.timezone)


def rule_source(group: MembersGroup) -> str:
    """The event source of a rule's changes: the system's for a system group."""
    return Source.SYSTEM if group.system else Source.RULE


def _sql(queryset: QuerySet[Any]) -> tuple[str, list[Any]]:
    sql, params = queryset.query.sql_with_params()
    return sql, list(params)


def apply_rule(
    group: MembersGroup,
    actor: str,
    member_ids: Sequence[int] | None = None,
    *,
    new: bool = False,
) -> MembershipDiff:
    """Make the locked group's rows equal its rule, for ``member_ids`` only if given.

    ``new``: the members were created in this transaction, so none of them is in any group
    yet and there is nothing to take out.
    """
    rule = _rule(group)
    wanted = Member.objects.filter(rule)
    current = Membership.objects.filter(club_id=group.club_id, group_id=group.pk)
    if member_ids is not None:
        wanted = wanted.filter(InArray(F("id"), member_ids))
        current = current.filter(InArray(F("member_id"), member_ids))
    source = rule_source(group)
    left: list[int] = []
    if not new:
        stale = current.exclude(Exists(Member.objects.filter(rule, pk=OuterRef("member_id"))))
        left = ledger.leave_selected(group, stale, source=source, actor=actor)
    wanted_sql, wanted_params = _sql(wanted.values("id").order_by())
    joined = ledger.join_selected(
        group, wanted_sql, wanted_params, source=source, actor=actor, new=new
    )
    return MembershipDiff(joined=joined, left=left)


def propagate(club_id: int, changed: Iterable[int], member_ids: Sequence[int], actor: str) -> None:
    """Re-evaluate the groups that depend on ``changed`` for ``member_ids`` only."""
    if not member_ids:
        return
    for group_id in dependants_in_order(dependency_graph(club_id), list(changed)):
        apply_rule(lock_group(MembersGroup(pk=group_id, club_id=club_id)), actor, member_ids)


def check_graph(group: MembersGroup, references: set[int], field: str) -> None:
    """Refuse with 422, naming the cycle, a rule for ``group`` naming ``references``."""
    graph = dependency_graph(group.club_id)
    graph[group.pk] = references
    names = dict(MembersGroup.objects.filter(club_id=group.club_id).values_list("id", "name"))
    check_acyclic(graph, names, field)


def check_rule_graph(
    *, club_id: int, node: Node, group_id: int | None = None, audience_id: int | None = None
) -> None:
    """Refuse, as saving would (``check_graph``), conditions that would make a cycle as the
    rule of the automatic group ``group_id`` or of the automatic groups following the
    audience ``audience_id``."""
    references = referenced_group_ids(node)
    if not references or (group_id is None and audience_id is None):
        return
    targets = Q()
    if group_id is not None:
        targets |= Q(pk=group_id)
    if audience_id is not None:
        targets |= Q(audience_id=audience_id)
    groups = MembersGroup.objects.filter(targets, club_id=club_id, automatic=True)
    for group in groups.order_by("pk"):
        check_graph(group, references, "conditions")


def recompute_locked(group: MembersGroup, actor: str = "") -> MembershipDiff:
    """Apply the locked group's rule as a diff, then let its dependants follow."""
    diff = apply_rule(group, actor)
    propagate(group.club_id, [group.pk], sorted(diff.joined + diff.left), actor)
    return diff


def _club_size(club_id: int) -> int:
    counts = MembersGroup.objects.filter(club_id=club_id, system_key=ALL_MEMBERS_KEY)
    return counts.values_list("members_count", flat=True).first() or 0


def recompute_or_schedule(group: MembersGroup, actor: str = "") -> None:
    """Apply the locked group's rule now, or in the background when the club is large.

    A scheduled group shows ``recomputing`` until the task has run; the task is enqueued
    only once the transaction commits, so it never sees the rule before the change.
    """
    if _club_size(group.club_id) <= settings.RECOMPUTE_INLINE_MAX:
        recompute_locked(group, actor)
        return
    group.recomputing = True
    group.recompute_version += 1
    group.recompute_requested_at = timezone.now()
    MembersGroup.objects.filter(pk=group.pk).update(
        recomputing=True,
        recompute_version=group.recompute_version,
        recompute_requested_at=group.recompute_requested_at,
    )
    enqueue_after_commit(
        f"the recomputation of group {group.pk}",
        partial(_enqueue_recompute, group.pk, group.recompute_version),
        swept_by="resume-stalled-work",
    )


def _enqueue_recompute(group_id: int, version: int) -> None:
    # Imported here: the tasks module imports this one.
    from groups.tasks import recompute_group_task

    recompute_group_task.enqueue(group_id=group_id, version=version)


def resume_stale_recomputations() -> list[MembersGroup]:
    """Enqueue again every background recomputation pending for RECOMPUTE_STALE_SECONDS
    (its worker died, or its task was lost), and return the groups.

    Each is claimed first, its clock restarted in one conditional UPDATE, so that a sweep
    while the queue is backed up adds no second task for it until the clock runs out again:
    a run takes the club's rules lock and recomputes the whole diff. A run of one that was
    only late as well changes nothing more; the run of the latest version clears the flag.
    """
    stale_before = timezone.now() - timedelta(seconds=settings.RECOMPUTE_STALE_SECONDS)
    pending = Q(recomputing=True) & (
        Q(recompute_requested_at__lt=stale_before) | Q(recompute_requested_at=None)
    )
    claimed = []
    for group in MembersGroup.objects.filter(pending).select_related("club").order_by("pk"):
        if MembersGroup.objects.filter(pending, pk=group.pk).update(
            recompute_requested_at=timezone.now()
        ):
            _enqueue_recompute(group.pk, group.recompute_version)
            claimed.append(group)
    return claimed


@transaction.atomic
def recompute_group(
    *, group_id: int, version: int | None = None, actor: str = ""
) -> MembershipDiff:
    """Make an automatic group equal its rule; running it twice, or twice at once, is safe.

    The row lock serialises concurrent runs, and the second finds nothing left to change.
    ``version`` (from a scheduled run) clears ``recomputing`` only if no newer change was
    scheduled meanwhile.
    """
    group = MembersGroup.objects.filter(pk=group_id).first()
    if group is None or not group.automatic:
        return MembershipDiff(joined=[], left=[])
    lock_rules(group.club_id, exclusive=True)
    group = lock_group(group)
    diff = recompute_locked(group, actor)
    if group.recomputing and (version is None or version == group.recompute_version):
        # The group now equals the rule it has under the lock. An unversioned run (the
        # recompute_groups command) also clears a flag a killed worker left set.
        MembersGroup.objects.filter(pk=group.pk, recompute_version=group.recompute_version).update(
            recomputing=False
        )
    return diff


def refresh_relative_date_groups(*, club_id: int | None = None) -> list[int]:
    """Re-compute every automatic group (of one club, or of all) whose rule counts days from
    today; the scheduler runs it for each club just after its midnight."""
    refreshed = []
    groups = MembersGroup.objects.filter(automatic=True).select_related("audience")
    if club_id is not None:
        groups = groups.filter(club_id=club_id)
    for group in groups.order_by("club_id", "pk"):
        try:
            node = parse_conditions(group.audience.conditions)
        except ConditionError:
            continue
        if uses_relative_dates(node):
            recompute_group(group_id=group.pk, actor="schedule:relative_dates")
            refreshed.append(group.pk)
    return refreshed


def order_for_recompute(groups: Sequence[MembersGroup]) -> list[MembersGroup]:
    """The groups in an order where every group comes after the groups its rule uses."""
    ordered: list[MembersGroup] = []
    for club_id in dict.fromkeys(group.club_id for group in groups):
        graph = dependency_graph(club_id)
        rank = {
            group_id: i for i, group_id in enumerate(g for batch in levels(graph) for g in batch)
        }
        club_groups = [group for group in groups if group.club_id == club_id]
        ordered.extend(sorted(club_groups, key=lambda group: rank.get(group.pk, -1)))
    return ordered


@transaction.atomic
def recount_group(*, group_id: int) -> tuple[int, int] | None:
    """Set the stored count from the rows; return (old, new) if it was wrong.

    Only a repair: the ledger keeps the count exact, so this finds drift from writes made
    behind its back (a manual SQL fix, a restored backup).
    """
    return ledger.recount(lock_group(MembersGroup.objects.get(pk=group_id)))


@transaction.atomic
def recompute_audience_followers(*, audience: Audience) -> None:
    """Re-compute, or schedule, the automatic groups that follow an audience whose rule changed.

    Refusals name ``conditions``: the audience payload's field.
    """
    node = parse_or_refuse(audience.conditions, "conditions")
    lock_rules(audience.club_id, exclusive=True)
    for group in MembersGroup.objects.filter(audience=audience, automatic=True).order_by("pk"):
        check_graph(group, referenced_group_ids(node), "conditions")
        recompute_or_schedule(lock_group(group))
