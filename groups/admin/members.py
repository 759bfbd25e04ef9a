"""The members admin with groups: a groups column and filter, a member's groups, exact
counts from the stored ones, and the groups a deleted member leaves.

Registered in place of ``members.admin.MemberAdmin``, which it extends: members sit below
groups and never import them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.contrib import admin
from django.contrib.admin.views.main import ChangeList
from django.db.models import QuerySet
from django.http import HttpRequest
from django.template.defaultfilters import pluralize
from django.urls import reverse
from django.utils import timezone
from django.utils.formats import date_format
from django.utils.html import format_html, format_html_join

from groups import selectors
from loyalty.admin import ClubFilter, admin_id, managed_clubs
from members.admin import LIST_PARAMETERS, MemberAdmin, MemberClubFilter
from members.models import Member


def _group_url(group_id: int) -> str:
    return reverse("admin:groups_membersgroup_change", args=[group_id])


class GroupFilter(admin.SimpleListFilter):
    """Filter by members group: the groups of the chosen club, else of every managed club."""

    title = "members group"
    parameter_name = "group"

    # Ids as text: see IdFilter.
    def lookups(
        self, request: HttpRequest, model_admin: admin.ModelAdmin[Any]
    ) -> list[tuple[str, str]]:
        rows = selectors.group_choices(
            clubs=managed_clubs(request),
            club_id=admin_id(request.GET.get(ClubFilter.parameter_name)),
        )
        clubs = {club_name for _pk, _name, club_name in rows}
        if len(clubs) > 1:
            return [
                (str(pk), f"{name or f'group {pk}'} ({club_name})") for pk, name, club_name in rows
            ]
        return [(str(pk), name or f"group {pk}") for pk, name, _club_name in rows]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Member]) -> QuerySet[Member]:
        value = self.value()
        if value is None:
            return queryset
        group_id = admin_id(value)
        members = (
            None
            if group_id is None
            else selectors.in_group(group_id=group_id, clubs=managed_clubs(request))
        )
        return queryset.none() if members is None else queryset.filter(members)


class MemberChangeList(ChangeList):
    """The members list, with each shown member's groups fetched in one query per page."""

    def get_results(self, request: HttpRequest) -> None:
        super().get_results(request)
        members = list(self.result_list)
        groups = selectors.groups_of_members(members)
        for member in members:
            member.page_groups = groups[member.pk]
        self.result_list = members


class MemberWithGroupsAdmin(MemberAdmin):
    list_display = [*MemberAdmin.list_display[:-1], "groups", MemberAdmin.list_display[-1]]
    list_filter = [MemberClubFilter, GroupFilter, *MemberAdmin.list_filter[1:]]
    readonly_fields = ["member_groups", *MemberAdmin.readonly_fields]

    def get_changelist(self, request: HttpRequest, **kwargs: Any) -> type[ChangeList]:
        return MemberChangeList

    def known_count(self, request: HttpRequest) -> int | None:
        """The list's exact length from stored counts, when only club or group narrow it."""
        narrowing = set(request.GET) - LIST_PARAMETERS
        if not narrowing <= {MemberClubFilter.parameter_name, GroupFilter.parameter_name}:
            return None
        ids: dict[str, int | None] = {}
        for name in (MemberClubFilter.parameter_name, GroupFilter.parameter_name):
            if name in request.GET:
                ids[name] = admin_id(request.GET[name])
                if ids[name] is None:
                    return 0
        return selectors.stored_members_total(
            clubs=managed_clubs(request),
            club_id=ids.get(MemberClubFilter.parameter_name),
            group_id=ids.get(GroupFilter.parameter_name),
        )

    @admin.display(description="groups")
    def groups(self, member: Member) -> str:
        """The member's groups, as fetched for the whole page by MemberChangeList."""
        return format_html_join(
            ", ",
            '<a href="{}">{}</a>',
            ((_group_url(group_id), name) for group_id, name in member.page_groups),
        )

    @admin.display(description="groups")
    def member_groups(self, member: Member) -> str:
        """Every group of the member with when it joined."""
        items = format_html_join(
            "",
            '<li><a href="{}">{}</a>, joined {}</li>',
            (
                (
                    _group_url(group_id),
                    name or f"group {group_id}",
                    date_format(timezone.localtime(joined_at), "DATETIME_FORMAT"),
                )
                for group_id, name, joined_at in selectors.memberships_of_member(member)
            ),
        )
        return format_html('<ul class="member-groups">{}</ul>', items) if items else "None"

    def get_deleted_objects(
        self, objs: Sequence[Member] | QuerySet[Member], request: HttpRequest
    ) -> tuple[list[Any], dict[str, int], set[str], list[Any]]:
        """List the members with how many groups each leaves, counted in one query.

        Django's default would load and list every membership row of every member. No
        permission beyond the one the views check first is needed: the service removes the
        memberships.
        """
        members = list(objs)
        groups = selectors.groups_counts_of_members(members)
        deleted = [
            format_html(
                '{}: <a href="{}">{}</a>, who leaves {} group{}',
                str(self.opts.verbose_name).capitalize(),
                reverse("admin:members_member_change", args=[member.pk]),
                member,
                groups.get(member.pk, 0),
                pluralize(groups.get(member.pk, 0)),
            )
            for member in members
        ]
        counts = {
            str(self.opts.verbose_name_plural): len(members),
            "memberships": sum(groups.values()),
        }
        return deleted, counts, set(), []


admin.site.unregister(Member)
admin.site.register(Member, MemberWithGroupsAdmin)
