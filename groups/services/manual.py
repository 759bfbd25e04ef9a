"""Manual groups: members added and removed by hand (the API, the admin, the commands)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from django.db import transaction

from groups import ledger
from groups.models import MembersGroup
from groups.services.errors import refuse_membership_by_hand
from groups.services.locking import lock_group, lock_members
from groups.services.rules import propagate
from members.selectors import Resolution, resolve_identifiers


@dataclass(frozen=True)
class BulkResult:
    """The report of a bulk add (changed = added) or remove (changed = removed)."""

    group: MembersGroup
    changed: int
    unchanged: int
    not_found: list[Any]
    invalid: list[Any]


def _editable(group: MembersGroup) -> MembersGroup:
    """Lock a manual group for a change of its members, or refuse with 405.

    Its members to change are share-locked after it (``lock_members``, or
    ``resolve_identifiers(for_share=True)``), the order ``groups.services.locking`` keeps.
    """
    group = lock_group(group)
    refuse_membership_by_hand(group)
    return group


def _join(group: MembersGroup, member_ids: Sequence[int], source: str, actor: str) -> list[int]:
    """Add the club's locked members to a locked manual group; its dependants follow."""
    joined = ledger.join(group, member_ids, source=source, actor=actor)
    propagate(group.club_id, [group.pk], joined, actor)
    return joined


def _leave(group: MembersGroup, member_ids: Sequence[int], source: str, actor: str) -> list[int]:
    """Remove the club's locked members from a locked manual group; its dependants follow."""
    left = ledger.leave(group, member_ids, source=source, actor=actor)
    propagate(group.club_id, [group.pk], left, actor)
    return left


@transaction.atomic
def add_member_ids(
    *, group: MembersGroup, member_ids: Sequence[int], source: str, actor: str = ""
) -> int:
    """Add members of the group's club to a manual group; return how many were new."""
    group = _editable(group)
    found = lock_members(group.club_id, sorted(set(member_ids)))
    return len(_join(group, found, source, actor))


@transaction.atomic
def remove_member_ids(
    *, group: MembersGroup, member_ids: Sequence[int], source: str, actor: str = ""
) -> int:
    """Remove members from a manual group; return how many were members."""
    group = _editable(group)
    found = lock_members(group.club_id, sorted(set(member_ids)))
    return len(_leave(group, found, source, actor))


def _report(group: MembersGroup, found: Resolution, changed: list[int]) -> BulkResult:
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
    group = _editable(group)
    found = resolve_identifiers(
        club=group.club, identifier_type=identifier_type, identifiers=identifiers, for_share=True
    )
    return _report(group, found, _join(group, found.member_ids, source, actor))


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
        club=group.club, identifier_type=identifier_type, identifiers=identifiers, for_share=True
    )
    return _report(group, found, _leave(group, found.member_ids, source, actor))
