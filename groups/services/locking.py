"""The locks every change of memberships takes first, in one order, so that none deadlocks.

A change of one group locks its row; a member's changes share the club's rules lock,
which a recomputation of the whole club holds alone. The rules lock is always taken
before any group row lock.
"""

from __future__ import annotations

from collections.abc import Sequence

from django.db import connection

from groups.models import MembersGroup
from loyalty.db import array_param, in_array
from members.models import Member


def lock_group(group: MembersGroup) -> MembersGroup:
    """Lock the group's row until the transaction ends, and read it afresh."""
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


def lock_rules(club_id: int, *, exclusive: bool) -> None:
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


def lock_members(club_id: int, member_ids: Sequence[int]) -> list[int]:
    """Share-lock the club's members among ``member_ids``, in id order; return those found.

    A concurrent update or delete of one of them waits for this transaction (or this one
    for it), so the rules of dependent groups are evaluated on committed properties, and a
    member deleted meanwhile is left out rather than failing the foreign key. SQLite, one
    writer at a time, only reads which of them are the club's.
    """
    if not member_ids:
        return []
    lock = " FOR SHARE" if connection.vendor == "postgresql" else ""
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT id FROM {Member._meta.db_table} WHERE club_id = %s AND "
            f"{in_array('id', 'bigint')} ORDER BY id{lock}",
            [club_id, array_param(member_ids)],
        )
        return [row[0] for row in cursor.fetchall()]
