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


def _editable(group: MembersGroup, member_ids: Sequence[int]) -> tuple[MembersGroup, list[int]]:
    """Lock a manual group for a change of its members, or refuse with 405; then share-lock
    the club's members among ``member_ids`` and return the group and those found."""
    group = lock_group(group)
    refuse_membership_by_hand(group)
    return group, lock_members(group.club_id, sorted(set(member_ids)))


def _join(
    group: MembersGroup, member_ids: Sequence[int], source: str, actor: str
) -> tuple[MembersGroup, list[int]]:
    """Add members to a manual group; the groups that depend on it follow."""
    group, member_ids = _editable(group, member_ids)
    joined = ledger.join(group, member_ids, source=source, actor=actor)
    propagate(group.club_id, [group.pk], joined, actor)
    return group, joined


def _leave(
    group: MembersGroup, member_ids: Sequence[int], source: str, actor: str
) -> tuple[MembersGroup, list[int]]:
    """Remove members from a manual group; the groups that depend on it follow."""
    group, member_ids = _editable(group, member_ids)
    left = ledger.leave(group, member_ids, source=source, actor=actor)
    propagate(group.club_id, [group.pk], left, actor)
    return group, left


@transaction.atomic
def add_member_ids(
    *, group: MembersGroup, member_ids: Sequence[int], source: str, actor: str = ""
) -> int:
    """Add members of the group's club to a manual group; return how many were new."""
    return len(_join(group, member_ids, source, actor)[1])


@transaction.atomic
def remove_member_ids(
    *, group: MembersGroup, member_ids: Sequence[int], source: str, actor: str = ""
) -> int:
    """Remove members from a manual group; return how many were members."""
    return len(_leave(group, member_ids, source, actor)[1])


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
    found = resolve_identifiers(
        club=group.club, identifier_type=identifier_type, identifiers=identifiers
    )
    group, joined = _join(group, found.member_ids, source, actor)
    return _report(group, found, joined)


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
    found = resolve_identifiers(
        club=group.club, identifier_type=identifier_type, identifiers=identifiers
    )
    group, left = _leave(group, found.member_ids, source, actor)
    return _report(group, found, left)
