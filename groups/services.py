"""State changes of members groups: the only code that writes memberships, counts and events.

Every change locks the group row, writes the membership rows and their events with
set-based SQL, and moves ``members_count`` by exactly the number of rows written, all in
the caller's transaction. Automatic groups are kept equal to their rule by diffs: only the
rows that change are written, and the groups that depend on a changed group follow, in
dependency order, for the members concerned only.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from functools import lru_cache, partial
from typing import Any
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db import connection, transaction
from django.db.backends.utils import CursorWrapper
from django.db.models import Exists, F, OuterRef, Q, QuerySet
from django.db.models.sql import DeleteQuery
from django.utils import timezone

from audiences.conditions import (
    ConditionError,
    compile_conditions,
    parse_conditions,
    referenced_group_ids,
    uses_relative_dates,
)
from audiences.models import Audience
from audiences.services import check_group_references, parse_or_refuse
from groups import webhooks
from groups.dependencies import (
    check_acyclic,
    dependants_in_order,
    dependency_graph,
    graph_of,
    levels,
)
from groups.models import (
    ALL_MEMBERS_KEY,
    EventKind,
    MembersGroup,
    Membership,
    MembershipEvent,
    Source,
)
from loyalty.db import InArray, array_param, array_rows, in_array
from loyalty.errors import InvalidParameters, NotAllowed
from loyalty.models import Club
from members.models import Member
from members.selectors import resolve_identifiers

GROUP_TABLE = MembersGroup._meta.db_table
MEMBERSHIP_TABLE = Membership._meta.db_table
EVENT_TABLE = MembershipEvent._meta.db_table


class GroupIsSystem(NotAllowed):
    message = "System groups are maintained by the system and cannot be changed or destroyed."


class GroupIsAutomatic(NotAllowed):
    message = "An automatic group's members follow its conditions; they cannot be changed by hand."


class GroupInUse(NotAllowed):
    message = "The group is used by the conditions of other groups."


@dataclass(frozen=True)
class BulkResult:
    """The report of a bulk add (changed = added) or remove (changed = removed)."""

    group: MembersGroup
    changed: int
    unchanged: int
    not_found: list[Any]
    invalid: list[Any]


@dataclass(frozen=True)
class MembershipDiff:
    """The members a recomputation added to and removed from a group."""

    joined: list[int]
    left: list[int]


def membership_rule(group_id: int) -> list[dict[str, Any]]:
    """The audience conditions of a manual group: its own members (SPEC section 1)."""
    return [
        {
            "condition_group": "member_properties",
            "type": "array",
            "field": "members_group_ids",
            "operator": "any",
            "value": [group_id],
        }
    ]


# Rows, events and counts ----------------------------------------------------------------


def _lock(group: MembersGroup) -> MembersGroup:
    # Not joined to the audience: a row lock that waited re-reads the group row only, so a
    # joined audience would be the rule from before the change it waited for. Read after
    # the lock, the audience is the committed one.
    return (
        MembersGroup.objects.select_for_update(of=("self",))
        .select_related("club")
        .get(pk=group.pk, club_id=group.club_id)
    )


# Key space of the club-wide rules lock (pg_advisory_xact_lock's first int): "rule".
RULES_LOCK = 0x72756C65


def _lock_rules(club_id: int, *, exclusive: bool) -> None:
    """Hold the club's rules lock until the transaction ends.

    A recomputation reads the whole club without row locks and takes it alone; evaluating
    members against the rules shares it. So a member write never decides with a rule that
    a concurrent recomputation is replacing, nor does the recomputation miss a member
    written meanwhile: whichever comes second sees what the first committed. Take it before
    any group row lock, so that the two orders never meet. SQLite runs one writer at a time.
    """
    if connection.vendor != "postgresql":
        return
    function = "pg_advisory_xact_lock" if exclusive else "pg_advisory_xact_lock_shared"
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {function}(%s, %s)", [RULES_LOCK, club_id])


def _lock_members(club_id: int, member_ids: Sequence[int]) -> list[int]:
    """Share-lock the club's members among ``member_ids``, in id order; return those found.

    A concurrent update or delete of one of them waits for this transaction (or this one
    for it), so the rules of dependent groups are evaluated on committed properties, and a
    member deleted meanwhile is left out rather than failing the foreign key.
    """
    if not member_ids:
        return []
    if connection.vendor != "postgresql":
        return list(member_ids)
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT id FROM {Member._meta.db_table} WHERE club_id = %s AND "
            f"{in_array('id', 'bigint')} ORDER BY id FOR SHARE",
            [club_id, array_param(member_ids)],
        )
        return [row[0] for row in cursor.fetchall()]


def _moment(at: datetime) -> Any:
    """A time as raw SQL must bind it: on SQLite in the ORM's text form, which the ORM's
    comparisons (``at=``) expect, not sqlite3's own (with "+00:00")."""
    return connection.ops.adapt_datetimefield_value(at)


def _record(
    cursor: CursorWrapper,
    group: MembersGroup,
    member_ids: Sequence[int],
    kind: EventKind,
    source: str,
    actor: str,
    at: datetime | None = None,
) -> None:
    """Record the members' joins or leaves, at ``at`` (a join: its membership's joined_at)."""
    endpoints = webhooks.listening_endpoints(group.club_id, kind, [group.pk])
    cursor.execute(
        f"INSERT INTO {EVENT_TABLE} "
        "(club_id, group_id, member_id, kind, source, actor, created_at) "
        f"SELECT %s, %s, ids.value, %s, %s, %s, %s FROM {array_rows('bigint', 'ids')}"
        + (" RETURNING id, group_id" if endpoints else ""),
        [
            group.club_id,
            group.pk,
            kind,
            source,
            actor,
            _moment(at or timezone.now()),
            array_param(member_ids),
        ],
    )
    if endpoints:
        webhooks.queue_deliveries(group.club_id, kind, endpoints, cursor.fetchall())


def _move_count(cursor: CursorWrapper, group: MembersGroup, delta: int) -> None:
    cursor.execute(
        f"UPDATE {GROUP_TABLE} SET members_count = members_count + %s "
        "WHERE id = %s RETURNING members_count",
        [delta, group.pk],
    )
    group.members_count = cursor.fetchone()[0]


def _insert(
    group: MembersGroup,
    select_sql: str,
    params: Sequence[Any],
    source: str,
    actor: str,
    *,
    new: bool = False,
) -> list[int]:
    """Insert the memberships of the member ids ``select_sql`` yields; return the new ones.

    ``new``: the members were created in this transaction, so none is in the group yet.
    """
    # Without ON CONFLICT for new members: the unique index is then checked as the row goes
    # in, not probed before; a fifth of the insert's time.
    upsert = "" if new else " ON CONFLICT (club_id, group_id, member_id) DO NOTHING"
    # One moment for the rows and their events: the ledger at a member's joined_at has it.
    now = timezone.now()
    with connection.cursor() as cursor:
        # Sorted inserts walk the unique index in order: about 30% faster (PERFORMANCE.md).
        # "WHERE true" lets SQLite tell the upsert's ON CONFLICT from a join's ON.
        cursor.execute(
            f"INSERT INTO {MEMBERSHIP_TABLE} (club_id, group_id, member_id, joined_at) "
            f"SELECT %s, %s, w.id, %s FROM ({select_sql}) w WHERE true ORDER BY w.id"
            f"{upsert} RETURNING member_id",
            [group.club_id, group.pk, _moment(now), *params],
        )
        joined = [row[0] for row in cursor.fetchall()]
        if joined:
            _record(cursor, group, joined, EventKind.JOINED, source, actor, now)
            _move_count(cursor, group, len(joined))
    return joined


def _delete(
    group: MembersGroup, memberships: QuerySet[Membership], source: str, actor: str
) -> list[int]:
    """Delete the group's ``memberships``; return the members who left.

    The queryset becomes one ``DELETE ... WHERE`` on the membership table itself, so an
    anti-join condition stays correlated to the deleted row. (An ``id IN (SELECT ...)``
    self-join, planned on a freshly filled table's stale statistics, went quadratic.)
    """
    memberships = memberships.filter(club_id=group.club_id, group_id=group.pk)
    sql, params = memberships.query.chain(DeleteQuery).get_compiler(memberships.db).as_sql()
    with connection.cursor() as cursor:
        cursor.execute(f"{sql} RETURNING member_id", params)
        left = [row[0] for row in cursor.fetchall()]
        if left:
            _record(cursor, group, left, EventKind.LEFT, source, actor)
            _move_count(cursor, group, -len(left))
    return left


def _join(group: MembersGroup, member_ids: Sequence[int], source: str, actor: str) -> list[int]:
    """Add the club's ``member_ids`` that are not in the group yet."""
    if not member_ids:
        return []
    return _insert(
        group,
        f"SELECT id FROM {Member._meta.db_table} WHERE club_id = %s AND {in_array('id', 'bigint')}",
        [group.club_id, array_param(member_ids)],
        source,
        actor,
    )


def _leave(group: MembersGroup, member_ids: Sequence[int], source: str, actor: str) -> list[int]:
    if not member_ids:
        return []
    return _delete(
        group, Membership.objects.filter(InArray(F("member_id"), member_ids)), source, actor
    )


# Rules ----------------------------------------------------------------------------------


def _rule(group: MembersGroup) -> Q:
    node = parse_conditions(group.audience.conditions)
    return compile_conditions(node, club_id=group.club_id, tz=group.club.timezone)


def _rule_source(group: MembersGroup) -> str:
    return Source.SYSTEM if group.system else Source.RULE


def _sql(queryset: QuerySet[Any]) -> tuple[str, list[Any]]:
    sql, params = queryset.query.sql_with_params()
    return sql, list(params)


def _apply_rule(
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
    source = _rule_source(group)
    left: list[int] = []
    if not new:
        stale = current.exclude(Exists(Member.objects.filter(rule, pk=OuterRef("member_id"))))
        left = _delete(group, stale, source, actor)
    wanted_sql, wanted_params = _sql(wanted.values("id").order_by())
    joined = _insert(group, wanted_sql, wanted_params, source, actor, new=new)
    return MembershipDiff(joined=joined, left=left)


def _propagate(club_id: int, changed: Iterable[int], member_ids: Sequence[int], actor: str) -> None:
    """Re-evaluate the groups that depend on ``changed`` for ``member_ids`` only."""
    if not member_ids:
        return
    for group_id in dependants_in_order(dependency_graph(club_id), list(changed)):
        _apply_rule(_lock(MembersGroup(pk=group_id, club_id=club_id)), actor, member_ids)


def _check_graph(group: MembersGroup, references: set[int], field: str) -> None:
    graph = dependency_graph(group.club_id)
    graph[group.pk] = references
    names = dict(MembersGroup.objects.filter(club_id=group.club_id).values_list("id", "name"))
    check_acyclic(graph, names, field)


# Membership changes by hand ---------------------------------------------------------------


def refuse_system(group: MembersGroup) -> None:
    """A system group is the system's: changing or destroying it is 405, whatever was sent."""
    if group.system:
        raise GroupIsSystem()


def refuse_membership_by_hand(group: MembersGroup) -> None:
    """Only a manual group's members change by hand: else 405, whatever was sent."""
    refuse_system(group)
    if group.automatic:
        raise GroupIsAutomatic()


def _editable(group: MembersGroup) -> MembersGroup:
    """Lock a manual group for a membership change, or refuse with 405."""
    group = _lock(group)
    refuse_membership_by_hand(group)
    return group


Change = Callable[[MembersGroup, Sequence[int], str, str], list[int]]


def _by_hand(
    change: Change, group: MembersGroup, member_ids: Sequence[int], source: str, actor: str
) -> tuple[MembersGroup, list[int]]:
    """Apply a join or leave to a locked manual group; its dependants follow."""
    group = _editable(group)
    member_ids = _lock_members(group.club_id, sorted(set(member_ids)))
    changed = change(group, member_ids, source, actor)
    _propagate(group.club_id, [group.pk], changed, actor)
    return group, changed


@transaction.atomic
def add_member_ids(
    *, group: MembersGroup, member_ids: Sequence[int], source: str, actor: str = ""
) -> int:
    """Add members of the group's club to a manual group; return how many were new."""
    return len(_by_hand(_join, group, member_ids, source, actor)[1])


@transaction.atomic
def remove_member_ids(
    *, group: MembersGroup, member_ids: Sequence[int], source: str, actor: str = ""
) -> int:
    """Remove members from a manual group; return how many were members."""
    return len(_by_hand(_leave, group, member_ids, source, actor)[1])


def _bulk(
    change: Change,
    group: MembersGroup,
    identifier_type: str,
    identifiers: Iterable[Any],
    source: str,
    actor: str,
) -> BulkResult:
    found = resolve_identifiers(
        club=group.club, identifier_type=identifier_type, identifiers=identifiers
    )
    group, changed = _by_hand(change, group, found.member_ids, source, actor)
    return BulkResult(
        group=group,
        changed=len(changed),
        unchanged=len(found.member_ids) - len(changed),
        not_found=found.not_found,
        invalid=found.invalid,
    )


@transaction.atomic
def add_members(
    *,
    group: MembersGroup,
    identifier_type: str,
    identifiers: Iterable[Any],
    source: str,
    actor: str = "",
) -> BulkResult:
    """Add members to a manual group by email, msisdn or id; unknown ones are reported."""
    return _bulk(_join, group, identifier_type, identifiers, source, actor)


@transaction.atomic
def remove_members(
    *,
    group: MembersGroup,
    identifier_type: str,
    identifiers: Iterable[Any],
    source: str,
    actor: str = "",
) -> BulkResult:
    """Remove members from a manual group by email, msisdn or id; unknown ones are reported."""
    return _bulk(_leave, group, identifier_type, identifiers, source, actor)


# Groups -------------------------------------------------------------------------------------


def _audience_for(
    club: Club, name: str, audience_id: int | None, audience_conditions: Any
) -> tuple[Audience, set[int]]:
    """The audience an automatic group follows, and the groups its rule references.

    Given both, the conditions must be that audience's (a group read and sent back whole,
    or the platform's payload example); the group then follows the audience.
    """
    followed = (
        None if audience_id is None else Audience.objects.filter(club=club, pk=audience_id).first()
    )
    if followed is not None and audience_conditions is not None:
        if followed.conditions != audience_conditions:
            raise InvalidParameters.field(
                "audience_conditions", "not_the_audiences", audience_id=audience_id
            )
        audience_conditions = None
    if audience_conditions is not None and audience_id is None:
        node = parse_or_refuse(audience_conditions, "audience_conditions")
        references = check_group_references(club.pk, node, "audience_conditions")
        audience = Audience(
            club=club, name=name, conditions=audience_conditions, made_for_group=True
        )
        return audience, references
    if followed is None:
        raise InvalidParameters.field("audience_id", "not_found")
    node = parse_or_refuse(followed.conditions, "audience_id")
    return followed, check_group_references(club.pk, node, "audience_id")


@transaction.atomic
def create_group(
    *,
    club: Club,
    name: str = "",
    type: str = "",
    description: str = "",
    audience_id: int | None = None,
    audience_conditions: Any = None,
    actor: str = "",
) -> MembersGroup:
    """Create a group: manual, or automatic when given an audience or conditions.

    A manual group gets its own audience (``members_group_ids any [own id]``); an automatic
    group's members are computed at once from its rule.
    """
    fields = {"club": club, "name": name, "type": type, "description": description}
    if audience_id is None and audience_conditions is None:
        audience = Audience.objects.create(club=club, name=name, made_for_group=True)
        group = MembersGroup.objects.create(**fields, audience=audience)
        audience.conditions = membership_rule(group.pk)
        audience.save(update_fields=["conditions", "updated_at"])
        return group
    audience, _references = _audience_for(club, name, audience_id, audience_conditions)
    _lock_rules(club.pk, exclusive=True)
    if audience.pk is None:
        audience.save()
    group = MembersGroup.objects.create(**fields, audience=audience, automatic=True)
    recompute_or_schedule(_lock(group), actor)
    group.refresh_from_db()
    return group


@transaction.atomic
def update_group(*, group: MembersGroup, actor: str = "", **fields: Any) -> MembersGroup:
    """Change a group's name, type or description, or an automatic group's rule.

    A new rule is applied as a diff, then the groups that depend on this one follow.
    """
    if "audience_id" in fields or "audience_conditions" in fields:
        _lock_rules(group.club_id, exclusive=True)
    group = _lock(group)
    refuse_system(group)
    rule_fields: dict[str, Any] = {
        k: fields[k] for k in ("audience_id", "audience_conditions") if k in fields
    }
    if rule_fields and group.is_manual:
        # Its own audience and rule echoed back (a group read and sent back whole) change
        # nothing; only a change is refused.
        own = {"audience_id": group.audience_id, "audience_conditions": group.audience.conditions}
        changed = [k for k, value in rule_fields.items() if value != own[k]]
        if changed:
            raise InvalidParameters(
                details={
                    k: [{"error": "not_allowed_for_manual_group", "options": {}}] for k in changed
                }
            )
        rule_fields = {}
    for field in ("name", "type", "description"):
        if field in fields:
            setattr(group, field, fields[field])
    followed = group.audience
    new_rule = _set_rule(group, rule_fields) if rule_fields else False
    group.save()
    if group.audience_id != followed.pk:
        _drop_if_unused(followed)
    if new_rule:
        recompute_or_schedule(group, actor)
    return group


def _drop_if_unused(audience: Audience) -> None:
    """Delete an audience made for a group once no group uses it; keep a client's."""
    if audience.made_for_group and not audience.groups.exists():
        audience.delete()


def _set_rule(group: MembersGroup, rule_fields: dict[str, Any]) -> bool:
    """Point the group at its new audience; return whether the rule changed."""
    audience, references = _audience_for(
        group.club,
        group.name,
        rule_fields.get("audience_id"),
        rule_fields.get("audience_conditions"),
    )
    if audience.pk == group.audience_id or (
        audience.pk is None and audience.conditions == group.audience.conditions
    ):
        return False
    # The field the new rule came from, as _audience_for chose it: the audience when given.
    field = "audience_conditions" if audience.pk is None else "audience_id"
    _check_graph(group, references, field)
    if audience.pk is None:
        own = group.audience
        if own.made_for_group and not own.groups.exclude(pk=group.pk).exists():
            # The audience made for this group alone: change it in place.
            own.conditions = audience.conditions
            own.save(update_fields=["conditions", "updated_at"])
            return True
        audience.save()
    group.audience = audience
    return True


def recompute_locked(group: MembersGroup, actor: str = "") -> MembershipDiff:
    """Apply the locked group's rule as a diff, then let its dependants follow."""
    diff = _apply_rule(group, actor)
    _propagate(group.club_id, [group.pk], sorted(diff.joined + diff.left), actor)
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
    transaction.on_commit(partial(_enqueue_recompute, group.pk, group.recompute_version))


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
    _lock_rules(group.club_id, exclusive=True)
    group = _lock(group)
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

    Only a repair: every service keeps the count exact, so this finds drift from writes
    made behind the services' back (a manual SQL fix, a restored backup).
    """
    group = _lock(MembersGroup.objects.get(pk=group_id))
    rows = Membership.objects.filter(club_id=group.club_id, group_id=group.pk).count()
    if rows == group.members_count:
        return None
    old = group.members_count
    MembersGroup.objects.filter(pk=group.pk).update(members_count=rows)
    return old, rows


@transaction.atomic
def recompute_audience_followers(*, audience: Audience) -> None:
    """Re-compute, or schedule, the automatic groups that follow an audience whose rule changed.

    Refusals name ``conditions``: the audience payload's field.
    """
    node = parse_or_refuse(audience.conditions, "conditions")
    _lock_rules(audience.club_id, exclusive=True)
    for group in MembersGroup.objects.filter(audience=audience, automatic=True).order_by("pk"):
        _check_graph(group, referenced_group_ids(node), "conditions")
        recompute_or_schedule(_lock(group))


@transaction.atomic
def delete_group(*, group: MembersGroup, source: str, actor: str = "") -> None:
    """Destroy a group, recording a leave for each member; the audience made for it goes
    with it, an audience a client created stays."""
    group = _lock(group)
    refuse_system(group)
    graph = dependency_graph(group.club_id)
    users = sorted(g for g, needs in graph.items() if group.pk in needs and g != group.pk)
    if users:
        names = ", ".join(
            f"{name} ({pk})"
            for pk, name in MembersGroup.objects.filter(pk__in=users).values_list("pk", "name")
        )
        raise GroupInUse(f"The group is used by the conditions of: {names}.")
    endpoints = webhooks.listening_endpoints(group.club_id, EventKind.LEFT, [group.pk])
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {EVENT_TABLE} "
            "(club_id, group_id, member_id, kind, source, actor, created_at) "
            f"SELECT club_id, group_id, member_id, %s, %s, %s, %s FROM {MEMBERSHIP_TABLE} "
            "WHERE club_id = %s AND group_id = %s"
            + (" RETURNING id, group_id" if endpoints else ""),
            [EventKind.LEFT, source, actor, _moment(timezone.now()), group.club_id, group.pk],
        )
        if endpoints:
            webhooks.queue_deliveries(group.club_id, EventKind.LEFT, endpoints, cursor.fetchall())
        cursor.execute(
            f"DELETE FROM {MEMBERSHIP_TABLE} WHERE club_id = %s AND group_id = %s",
            [group.club_id, group.pk],
        )
    audience = group.audience
    group.delete()
    _drop_if_unused(audience)


@transaction.atomic
def create_system_groups(*, club: Club) -> None:
    """Give a new club its "All members" group: an automatic group whose rule is empty."""
    audience = Audience.objects.create(
        club=club, name="All members", conditions=[], made_for_group=True
    )
    MembersGroup.objects.create(
        club=club,
        name="All members",
        type="system",
        description="Every member of the club; maintained by the system.",
        automatic=True,
        system=True,
        system_key=ALL_MEMBERS_KEY,
        audience=audience,
    )


# Members changing ---------------------------------------------------------------------------


def _automatic_groups(club_id: int) -> dict[int, MembersGroup]:
    groups = MembersGroup.objects.filter(club_id=club_id, automatic=True).select_related(
        "club", "audience"
    )
    return {group.pk: group for group in groups}


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


@transaction.atomic
def refresh_memberships_for_member(*, member: Member, actor: str = "") -> None:
    """Put one member in exactly the automatic groups whose rules it satisfies.

    One query per dependency level (usually one) evaluates every rule for this member, so
    the cost grows with the number of automatic groups, never with the number of members.
    """
    _lock_rules(member.club_id, exclusive=False)
    groups = _automatic_groups(member.club_id)
    if not groups:
        return
    current = set(
        Membership.objects.filter(club_id=member.club_id, member_id=member.pk).values_list(
            "group_id", flat=True
        )
    )
    tz = next(iter(groups.values())).club.timezone
    today = datetime.now(ZoneInfo(tz)).date()
    graph = graph_of((pk, group.audience.conditions) for pk, group in groups.items())
    for batch in levels(graph):
        tests, params = [], []
        for group_id in batch:
            sql, rule_params = _rule_select(
                connection.vendor,
                member.club_id,
                tz,
                today,
                json.dumps(groups[group_id].audience.conditions, sort_keys=True),
            )
            tests.append(f"EXISTS (SELECT 1 FROM ({sql}) r WHERE r.id = %s)")
            params.extend([*rule_params, member.pk])
        with connection.cursor() as cursor:
            cursor.execute("SELECT " + ", ".join(tests), params)
            matches = cursor.fetchone()
        for group_id, matched in zip(batch, matches, strict=True):
            group = groups[group_id]
            if matched and group_id not in current:
                _join(group, [member.pk], _rule_source(group), actor)
            elif not matched and group_id in current:
                _leave(group, [member.pk], _rule_source(group), actor)


@transaction.atomic
def refresh_memberships_for_members(
    *, club: Club, member_ids: Sequence[int], actor: str = "", new: bool = False
) -> None:
    """Put a batch of members in the automatic groups they belong to: one diff per group."""
    _lock_rules(club.pk, exclusive=False)
    graph = dependency_graph(club.pk)
    for batch in levels(graph):
        for group_id in batch:
            group = _lock(MembersGroup(pk=group_id, club_id=club.pk))
            _apply_rule(group, actor, member_ids, new=new)


def place_new_members(*, club: Club, member_ids: Sequence[int], actor: str = "") -> None:
    """Put members created in this transaction in the automatic and system groups."""
    refresh_memberships_for_members(club=club, member_ids=member_ids, actor=actor, new=True)


@transaction.atomic
def leave_all_groups(*, member: Member, source: str, actor: str = "") -> None:
    """Take a member out of every group before it is deleted, recording each leave."""
    # Shared with other member writes, so a recomputation never adds a member being deleted.
    _lock_rules(member.club_id, exclusive=False)
    with connection.cursor() as cursor:
        cursor.execute(
            f"DELETE FROM {MEMBERSHIP_TABLE} WHERE club_id = %s AND member_id = %s "
            "RETURNING group_id",
            [member.club_id, member.pk],
        )
        group_ids = sorted(row[0] for row in cursor.fetchall())
        if not group_ids:
            return
        endpoints = webhooks.listening_endpoints(member.club_id, EventKind.LEFT, group_ids)
        cursor.execute(
            f"INSERT INTO {EVENT_TABLE} "
            "(club_id, group_id, member_id, kind, source, actor, created_at) "
            f"SELECT %s, g.value, %s, %s, %s, %s, %s FROM {array_rows('bigint', 'g')}"
            + (" RETURNING id, group_id" if endpoints else ""),
            [
                member.club_id,
                member.pk,
                EventKind.LEFT,
                source,
                actor,
                _moment(timezone.now()),
                array_param(group_ids),
            ],
        )
        if endpoints:
            webhooks.queue_deliveries(member.club_id, EventKind.LEFT, endpoints, cursor.fetchall())
        cursor.execute(
            f"UPDATE {GROUP_TABLE} SET members_count = members_count - 1 "
            f"WHERE club_id = %s AND {in_array('id', 'bigint')}",
            [member.club_id, array_param(group_ids)],
        )


@transaction.atomic
def prune_events(*, club: Club, before: datetime) -> int:
    """Delete the club's membership events from before ``before``; return how many.

    Per group and member, the last event before the cut is kept when it is a join: joins
    and leaves alternate, so it alone carries the membership across the cut, and the
    members at any moment after it (joins outnumbering leaves) stay what they were.
    """
    with connection.cursor() as cursor:
        cursor.execute(
            f"DELETE FROM {EVENT_TABLE} WHERE club_id = %(club)s AND created_at < %(before)s "
            "AND NOT (kind = %(joined)s AND NOT EXISTS (SELECT 1 FROM "
            f"{EVENT_TABLE} later WHERE later.club_id = {EVENT_TABLE}.club_id "
            f"AND later.member_id = {EVENT_TABLE}.member_id "
            f"AND later.group_id = {EVENT_TABLE}.group_id AND later.created_at < %(before)s "
            f"AND (later.created_at > {EVENT_TABLE}.created_at OR (later.created_at = "
            f"{EVENT_TABLE}.created_at AND later.id > {EVENT_TABLE}.id))))",
            {"club": club.pk, "before": before, "joined": EventKind.JOINED},
        )
        deleted: int = cursor.rowcount
        return deleted
