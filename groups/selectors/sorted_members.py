"""A page of a group's members sorted by member fields (``sort_by[]`` other than id).

Two plans give the same page. A group that is a large share of its club is best read by
walking the club's index on the first field, in order, and probing each member for
membership: a page costs about (offset + page) x club / group probes. A small group is best
sorted whole: its size. Which of the two queries is sent is chosen from the stored counts
(the planner's guess of a group's share of the club from its statistics can be stale), and
an unfiltered page's sorting query reads the group's members first (``InSubqueryArray``) so
that the same stale guess cannot turn it into a walk (bench/pages.py measures both plans).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from django.db.models import Exists, OuterRef, Q, QuerySet

from groups.models import ALL_MEMBERS_KEY, MembersGroup, Membership
from groups.selectors.group_members import MembersPage, member_ids_at
from loyalty.api.pagination import SortKey, page_in_order, sorted_by
from loyalty.db import InSubqueryArray
from loyalty.db_decoding import value_rows
from members.models import Member
from members.selectors import MEMBER_COLUMNS


def sorted_group_members_page(
    *,
    group: MembersGroup,
    keys: Sequence[SortKey],
    per_page: int,
    offset: int,
    at: datetime | None = None,
    only: QuerySet[Member] | None = None,
) -> MembersPage:
    """One page of a group's members in the order of ``keys`` (member fields), then by id.

    Now and unfiltered, a group that is a large enough share of its club for this page is
    read by walking the club's members in order (``_walked_page``); a smaller one is read
    first and sorted (``InSubqueryArray``: it is small, as the walk was dearer). Any other
    page sorts the group's members (with ``at``, as they were then; with ``only``, those it
    holds), planned by PostgreSQL.
    """
    unfiltered_now = at is None and only is None
    if unfiltered_now and _walk_is_cheaper(group, offset + per_page):
        page = _walked_page(group, keys, per_page=per_page, offset=offset)
        return MembersPage(members=page, next_after_id=None, is_first=offset == 0)
    if at is None:
        member_ids: QuerySet[Any] = Membership.objects.filter(
            club_id=group.club_id, group_id=group.pk
        ).values("member_id")
    else:
        member_ids = member_ids_at(group, at).values("member_id")
    held = InSubqueryArray("pk", member_ids) if unfiltered_now else Q(pk__in=member_ids)
    members = (only if only is not None else Member.objects.filter(club_id=group.club_id)).filter(
        held
    )
    page = value_rows(sorted_by(members, keys).values(*MEMBER_COLUMNS)[offset : offset + per_page])
    return MembersPage(members=page, next_after_id=None, is_first=offset == 0)


def _walk_is_cheaper(group: MembersGroup, reach: int) -> bool:
    """Whether walking the club to the page's end probes fewer members than the group has.

    The walk meets the group's members at the group's share of the club: reaching ``reach``
    of them takes about reach x club / group probes, where a sort reads the whole group.
    """
    if group.members_count == 0:
        return False
    if group.system_key == ALL_MEMBERS_KEY:
        club_size = group.members_count
    else:
        club_size = (
            MembersGroup.objects.filter(club_id=group.club_id, system_key=ALL_MEMBERS_KEY)
            .values_list("members_count", flat=True)
            .first()
        ) or 0
    return reach * club_size < group.members_count**2


def _walked_page(
    group: MembersGroup, keys: Sequence[SortKey], *, per_page: int, offset: int
) -> list[dict[str, Any]]:
    """The page read in the first key's order from the club's index on that field
    (``(club, created_at, id)``, ``(club, updated_at, id)``, or the unique ``(club, email)``
    and ``(club, msisdn)`` of the members that have one; see ``page_in_order``), each
    member probed for membership on the index ``(club, group, member)``."""
    members = Member.objects.filter(club_id=group.club_id).filter(
        Exists(
            Membership.objects.filter(
                club_id=group.club_id, group_id=group.pk, member_id=OuterRef("pk")
            )
        )
    )
    return page_in_order(members.values(*MEMBER_COLUMNS), keys, offset=offset, limit=per_page)
