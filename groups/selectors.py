"""Reads over members groups: a member's groups and pages of a group's members."""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import QuerySet

from groups.models import MembersGroup, Membership
from members.models import Member


def groups_of_member(member: Member) -> QuerySet[MembersGroup]:
    """The groups the member is in, found through the membership index ``(club, member)``."""
    group_ids = Membership.objects.filter(club_id=member.club_id, member_id=member.pk).values(
        "group_id"
    )
    return MembersGroup.objects.filter(club_id=member.club_id, pk__in=group_ids).select_related(
        "audience"
    )


@dataclass(frozen=True)
class MembersPage:
    members: list[Member]
    # The last id of this page when more follow (the next page's after_id), else None.
    next_after_id: int | None
    # Whether no member comes before this page.
    is_first: bool


def group_members_page(
    *,
    group: MembersGroup,
    per_page: int,
    offset: int = 0,
    after_id: int | None = None,
    descending: bool = False,
) -> MembersPage:
    """One page of a group's members, ordered by id.

    The ids are paged on the membership table's unique index ``(club, group, member)``
    alone and only then joined to their member rows: with ``after_id`` (key-set: the ids
    after it in the sort order, 0 to start) a page costs the same at any depth, and with
    ``offset`` the skipped entries are index entries, not rows (PERFORMANCE.md).
    """
    memberships = Membership.objects.filter(club_id=group.club_id, group_id=group.pk)
    after = "member_id__lt" if descending else "member_id__gt"
    ids = memberships.filter(**{after: after_id}) if after_id else memberships
    page_ids = list(
        ids.order_by("-member_id" if descending else "member_id").values_list(
            "member_id", flat=True
        )[offset : offset + per_page + 1]
    )
    more = len(page_ids) > per_page
    page_ids = page_ids[:per_page]
    if not after_id:
        is_first = offset == 0
    else:
        before = "member_id__gte" if descending else "member_id__lte"
        is_first = not memberships.filter(**{before: after_id}).exists()
    by_id = Member.objects.filter(club_id=group.club_id).in_bulk(page_ids)
    return MembersPage(
        members=[by_id[member_id] for member_id in page_ids],
        next_after_id=page_ids[-1] if more else None,
        is_first=is_first,
    )
