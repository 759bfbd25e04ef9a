"""State changes of members groups: the only code that writes memberships, counts and events.

Every change locks the group row, writes the membership rows and their events with
set-based SQL, and moves ``members_count`` by exactly the number of rows written, all in
the caller's transaction.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from django.db import connection, transaction
from django.db.backends.utils import CursorWrapper
from django.utils import timezone

from audiences.models import Audience
from groups.models import ALL_MEMBERS_KEY, EventKind, MembersGroup, Membership, MembershipEvent
from loyalty.db import array_param, array_rows, in_array
from loyalty.errors import InvalidParameters, NotAllowed
from loyalty.models import Club
from members.models import Member
from members.selectors import resolve_identifiers

GROUP_TABLE = MembersGroup._meta.db_table
MEMBERSHIP_TABLE = Membership._meta.db_table
EVENT_TABLE = MembershipEvent._meta.db_table
MEMBER_TABLE = Member._meta.db_table


class GroupIsSystem(NotAllowed):
    message = "System groups are maintained by the system and cannot be changed or destroyed."


class GroupIsAutomatic(NotAllowed):
    message = "An automatic group's members follow its conditions; they cannot be changed by hand."


class GroupInUse(NotAllowed):
    message = "The group's audience is used by other groups."


@dataclass(frozen=True)
class BulkResult:
    """The report of a bulk add (changed = added) or remove (changed = removed)."""

    group: MembersGroup
    changed: int
    unchanged: int
    not_found: list[Any]
    invalid: list[Any]


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


def _lock(group: MembersGroup) -> MembersGroup:
    return MembersGroup.objects.select_for_update().get(pk=group.pk, club_id=group.club_id)


def _record(
    cursor: CursorWrapper,
    group: MembersGroup,
    member_ids: Sequence[int],
    kind: EventKind,
    source: str,
    actor: str,
) -> None:
    cursor.execute(
        f"INSERT INTO {EVENT_TABLE} "
        "(club_id, group_id, member_id, kind, source, actor, created_at) "
        f"SELECT %s, %s, ids.value, %s, %s, %s, %s FROM {array_rows('bigint', 'ids')}",
        [group.club_id, group.pk, kind, source, actor, timezone.now(), array_param(member_ids)],
    )


def _move_count(cursor: CursorWrapper, group: MembersGroup, delta: int) -> None:
    cursor.execute(
        f"UPDATE {GROUP_TABLE} SET members_count = members_count + %s "
        "WHERE id = %s RETURNING members_count",
        [delta, group.pk],
    )
    group.members_count = cursor.fetchone()[0]


def _join(group: MembersGroup, member_ids: Sequence[int], source: str, actor: str) -> int:
    """Insert the missing memberships of the club's ``member_ids``; return how many joined."""
    if not member_ids:
        return 0
    with connection.cursor() as cursor:
        # Sorted inserts walk the unique index in order: about 30% faster (PERFORMANCE.md).
        cursor.execute(
            f"INSERT INTO {MEMBERSHIP_TABLE} (club_id, group_id, member_id, joined_at) "
            f"SELECT %s, %s, m.id, %s FROM {MEMBER_TABLE} m "
            f"WHERE m.club_id = %s AND {in_array('m.id', 'bigint')} ORDER BY m.id "
            "ON CONFLICT (club_id, group_id, member_id) DO NOTHING RETURNING member_id",
            [group.club_id, group.pk, timezone.now(), group.club_id, array_param(member_ids)],
        )
        joined = [row[0] for row in cursor.fetchall()]
        if joined:
            _record(cursor, group, joined, EventKind.JOINED, source, actor)
            _move_count(cursor, group, len(joined))
    return len(joined)


def _leave(group: MembersGroup, member_ids: Sequence[int], source: str, actor: str) -> int:
    """Delete the memberships of ``member_ids`` in the group; return how many left."""
    if not member_ids:
        return 0
    with connection.cursor() as cursor:
        cursor.execute(
            f"DELETE FROM {MEMBERSHIP_TABLE} WHERE club_id = %s AND group_id = %s "
            f"AND {in_array('member_id', 'bigint')} RETURNING member_id",
            [group.club_id, group.pk, array_param(member_ids)],
        )
        left = [row[0] for row in cursor.fetchall()]
        if left:
            _record(cursor, group, left, EventKind.LEFT, source, actor)
            _move_count(cursor, group, -len(left))
    return len(left)


def _editable(group: MembersGroup) -> MembersGroup:
    """Lock a manual group for a membership change, or refuse with 405."""
    group = _lock(group)
    if group.system:
        raise GroupIsSystem()
    if group.automatic:
        raise GroupIsAutomatic()
    return group


@transaction.atomic
def add_member_ids(
    *, group: MembersGroup, member_ids: Sequence[int], source: str, actor: str = ""
) -> int:
    """Add members of the group's club to a manual group; return how many were new."""
    return _join(_editable(group), member_ids, source, actor)


@transaction.atomic
def remove_member_ids(
    *, group: MembersGroup, member_ids: Sequence[int], source: str, actor: str = ""
) -> int:
    """Remove members from a manual group; return how many were members."""
    return _leave(_editable(group), member_ids, source, actor)


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
    group = _editable(group)
    found = resolve_identifiers(
        club=group.club, identifier_type=identifier_type, identifiers=identifiers
    )
    added = _join(group, found.member_ids, source, actor)
    return BulkResult(
        group=group,
        changed=added,
        unchanged=len(found.member_ids) - added,
        not_found=found.not_found,
        invalid=found.invalid,
    )


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
    group = _editable(group)
    found = resolve_identifiers(
        club=group.club, identifier_type=identifier_type, identifiers=identifiers
    )
    removed = _leave(group, found.member_ids, source, actor)
    return BulkResult(
        group=group,
        changed=removed,
        unchanged=len(found.member_ids) - removed,
        not_found=found.not_found,
        invalid=found.invalid,
    )


@transaction.atomic
def create_group(
    *, club: Club, name: str = "", type: str = "", description: str = ""
) -> MembersGroup:
    """Create a manual group with its own audience (``members_group_ids any [own id]``)."""
    audience = Audience.objects.create(club=club, name=name)
    group = MembersGroup.objects.create(
        club=club, name=name, type=type, description=description, audience=audience
    )
    audience.conditions = membership_rule(group.pk)
    audience.save(update_fields=["conditions", "updated_at"])
    return group


@transaction.atomic
def update_group(*, group: MembersGroup, **fields: Any) -> MembersGroup:
    """Change a group's name, type or description; the audience is not the caller's to set."""
    group = _lock(group)
    if group.system:
        raise GroupIsSystem()
    for field in ("audience_id", "audience_conditions"):
        if field in fields and group.is_manual:
            raise InvalidParameters.field(field, "not_allowed_for_manual_group")
    for field in ("name", "type", "description"):
        if field in fields:
            setattr(group, field, fields[field])
    group.save()
    return group


@transaction.atomic
def delete_group(*, group: MembersGroup, source: str, actor: str = "") -> None:
    """Destroy a group, recording a leave for each member; its own audience goes with it."""
    group = _lock(group)
    if group.system:
        raise GroupIsSystem()
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {EVENT_TABLE} "
            "(club_id, group_id, member_id, kind, source, actor, created_at) "
            f"SELECT club_id, group_id, member_id, %s, %s, %s, %s FROM {MEMBERSHIP_TABLE} "
            "WHERE club_id = %s AND group_id = %s",
            [EventKind.LEFT, source, actor, timezone.now(), group.club_id, group.pk],
        )
        cursor.execute(
            f"DELETE FROM {MEMBERSHIP_TABLE} WHERE club_id = %s AND group_id = %s",
            [group.club_id, group.pk],
        )
    audience = group.audience
    group.delete()
    if not audience.groups.exists():
        audience.delete()


@transaction.atomic
def create_system_groups(*, club: Club) -> None:
    """Give a new club its "All members" group."""
    audience = Audience.objects.create(club=club, name="All members", conditions=[])
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


@transaction.atomic
def join_system_groups(*, club: Club, member_ids: Sequence[int], source: str, actor: str) -> None:
    """Put new members in the club's "All members" group."""
    for group in MembersGroup.objects.select_for_update().filter(
        club=club, system_key=ALL_MEMBERS_KEY
    ):
        _join(group, member_ids, source, actor)


@transaction.atomic
def leave_all_groups(*, member: Member, source: str, actor: str = "") -> None:
    """Take a member out of every group before it is deleted, recording each leave."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"DELETE FROM {MEMBERSHIP_TABLE} WHERE club_id = %s AND member_id = %s "
            "RETURNING group_id",
            [member.club_id, member.pk],
        )
        group_ids = sorted(row[0] for row in cursor.fetchall())
        if not group_ids:
            return
        cursor.execute(
            f"INSERT INTO {EVENT_TABLE} "
            "(club_id, group_id, member_id, kind, source, actor, created_at) "
            f"SELECT %s, g.value, %s, %s, %s, %s, %s FROM {array_rows('bigint', 'g')}",
            [
                member.club_id,
                member.pk,
                EventKind.LEFT,
                source,
                actor,
                timezone.now(),
                array_param(group_ids),
            ],
        )
        cursor.execute(
            f"UPDATE {GROUP_TABLE} SET members_count = members_count - 1 "
            f"WHERE club_id = %s AND {in_array('id', 'bigint')}",
            [member.club_id, array_param(group_ids)],
        )
