"""Admin of members groups, edited through groups.services; system groups are read-only.

Each group also has a members page (``<id>/members/``) listing its members and its
membership history, where a manual group's members are added or removed in bulk, and a
CSV download of its members (``<id>/members.csv``, also a list action for one group).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.db.models import QuerySet
from django.http import (
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseRedirect,
    StreamingHttpResponse,
)
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString, mark_safe

from audiences.conditions import referenced_group_ids
from audiences.widgets import RuleBuilderTarget, RuleBuilderWidget, with_rule_builder
from groups import selectors, services
from groups.admin.rule_builder import RuleBuilderAdmin, builder_urls
from groups.charts import size_chart
from groups.exports import members_csv_response
from groups.forms import BulkMembersForm, GroupForm, rule_is_editable
from groups.models import MembersGroup, Source
from loyalty.admin import (
    ClubFilter,
    actor,
    add_refusal,
    adopt,
    managed_clubs,
)
from loyalty.errors import DomainError

if TYPE_CHECKING:
    from django.contrib.admin.options import _FieldGroups

MEMBERS_PER_PAGE = 100
EVENTS_PER_PAGE = 50
# A group's own page shows its latest events; the members page pages through them all.
LATEST_EVENTS = 20
CHART_DAYS = 90
GROUP_FIELDS = ["club", "name", "type", "description"]
# A group's page tells its story first: what it is, how big, by which rule, with which
# groups; then the rule as stored (editable on an automatic group) and the details.
STORY_FIELDS = [
    "kind",
    "members_count",
    "recomputing_state",
    "rule_in_words",
    "depends_on",
    "used_by",
]
DETAIL_FIELDS = ["audience_link", "created_at", "updated_at"]


def group_kind(group: MembersGroup) -> str:
    if group.system:
        return "system"
    return "automatic" if group.automatic else "manual"


def _counts(result: services.BulkResult, action: str) -> list[tuple[str, int]]:
    if action == "add":
        return [("Added", result.changed), ("Already members", result.unchanged)]
    return [("Removed", result.changed), ("Not members", result.unchanged)]


def _result_key(group: MembersGroup) -> str:
    """The session key of the report of a bulk change, kept until the page shows it."""
    return f"groups.bulk_result.{group.pk}"


def _cursor_value(value: str | None) -> int | None:
    value = (value or "").strip()
    return int(value) if value.isascii() and value.isdigit() and len(value) <= 18 else None


def _cursor(request: HttpRequest, name: str) -> int | None:
    return _cursor_value(request.GET.get(name))


def _can_view_members(request: HttpRequest) -> bool:
    return request.user.has_perm("members.view_member") or request.user.has_perm(
        "members.change_member"
    )


def _url_with(request: HttpRequest, name: str, value: int | None) -> str:
    """This page's URL with one query parameter set, or removed for None."""
    query = request.GET.copy()
    query.pop(name, None)
    if value is not None:
        query[name] = str(value)
    return f"?{query.urlencode()}" if query else "?"


@admin.register(MembersGroup)
class MembersGroupAdmin(RuleBuilderAdmin):
    form = GroupForm
    list_display = ["name", "club", "type", "automatic", "system", "members_count"]
    list_filter = [ClubFilter, "type", "automatic", "system"]
    search_fields = ["name", "description"]
    # The club is shown on every row: one join instead of a query per row.
    list_select_related = ["club"]
    readonly_fields = [*STORY_FIELDS, "rule", *DETAIL_FIELDS]
    actions = ["export_members_csv"]
    delete_selected_confirmation_template = "admin/refusable_delete_selected_confirmation.html"

    def get_fields(self, request: HttpRequest, obj: MembersGroup | None = None) -> _FieldGroups:
        if obj is None:
            return [*GROUP_FIELDS, "audience_id", "audience_conditions"]
        editable = rule_is_editable(obj) and self.has_change_permission(request, obj)
        rule = "audience_conditions" if editable else "rule"
        return [*GROUP_FIELDS, *STORY_FIELDS, rule, *DETAIL_FIELDS]

    def get_form(
        self, request: HttpRequest, obj: Any = None, change: bool = False, **kwargs: Any
    ) -> type[forms.ModelForm[Any]]:
        form = super().get_form(request, obj, change, **kwargs)
        builder = RuleBuilderWidget(
            club_id=None if obj is None else obj.club_id,
            target=RuleBuilderTarget("group", None if obj is None else obj.pk),
            urls=builder_urls(),
            # A new group without conditions is manual; an automatic group keeps a rule.
            empty="" if obj is None else "[]",
        )
        form = with_rule_builder(form, "audience_conditions", builder)
        # The audiences a new group may follow: those of the user's clubs.
        return type(form.__name__, (form,), {"clubs": managed_clubs(request)})

    def has_change_permission(self, request: HttpRequest, obj: MembersGroup | None = None) -> bool:
        # System groups are maintained by the system alone (SPEC section 1), even for
        # superusers.
        return not (obj is not None and obj.system) and super().has_change_permission(request, obj)

    def has_delete_permission(self, request: HttpRequest, obj: MembersGroup | None = None) -> bool:
        return not (obj is not None and obj.system) and super().has_delete_permission(request, obj)

    def action_checkbox(self, obj: MembersGroup) -> SafeString:
        # A system group cannot be selected: deleting it is refused (also for a forged
        # request), and its members are downloaded from its own page instead.
        return mark_safe("") if obj.system else super().action_checkbox(obj)

    @admin.action(description="Export members as CSV", permissions=["view"])
    def export_members_csv(
        self, request: HttpRequest, queryset: QuerySet[MembersGroup]
    ) -> StreamingHttpResponse | None:
        """Download the selected group's members; one group at a time, one file each.

        The queryset holds only the user's clubs' groups, so another club's id selects none.
        """
        count = queryset.count()
        if count != 1:
            self.message_user(
                request,
                f"Select exactly one group to export its members ({count} selected); "
                "nothing was exported.",
                messages.WARNING,
            )
            return None
        return members_csv_response(queryset.get(), escape_formulas=True)

    def can_change_members(self, request: HttpRequest, group: MembersGroup) -> bool:
        """Only a manual group's members are changed by hand; the others follow rules."""
        return group.is_manual and self.has_change_permission(request, group)

    @admin.display(description="audience")
    def audience_link(self, group: MembersGroup) -> str:
        url = reverse("admin:audiences_audience_change", args=[group.audience_id])
        return format_html('<a href="{}">{}</a>', url, group.audience)

    @admin.display(description="audience conditions")
    def rule(self, group: MembersGroup) -> str:
        conditions = json.dumps(group.audience.conditions, indent=2, ensure_ascii=False)
        return format_html("<pre>{}</pre>", conditions)

    @admin.display(description="kind")
    def kind(self, group: MembersGroup) -> str:
        return {
            "system": "System: kept by the service, read-only",
            "automatic": "Automatic: its members are exactly those who match its rule",
            "manual": "Manual: members are added and removed by hand, the API or imports",
        }[group_kind(group)]

    @admin.display(description="recomputing")
    def recomputing_state(self, group: MembersGroup) -> str:
        if group.recomputing:
            return "Yes: a background recomputation is pending; members and count follow it"
        return "No: members and count are up to date"

    @admin.display(description="rule")
    def rule_in_words(self, group: MembersGroup) -> str:
        """The rule in plain English, naming the groups it reads (one query for the names)."""
        if group.is_manual:
            return "None: members are added and removed by hand"
        node = selectors.group_rule(group)
        if node is None:
            return "A rule this version cannot read; see the conditions below"
        return selectors.rule_words(group.club_id, node)

    def _group_links(self, club_id: int, group_ids: set[int]) -> str:
        if not group_ids:
            return self.get_empty_value_display()
        return format_html_join(
            ", ",
            '<a href="{}">{}</a> ({}, {} members)',
            (
                (
                    reverse("admin:groups_membersgroup_change", args=[group.pk]),
                    group,
                    group_kind(group),
                    group.members_count,
                )
                for group in selectors.groups_by_name(club_id, group_ids)
            ),
        )

    @admin.display(description="depends on")
    def depends_on(self, group: MembersGroup) -> str:
        """The groups this group's rule reads (members_group_ids conditions).

        Read from the group's own rule; a manual group's rule names only itself.
        """
        node = selectors.group_rule(group) if group.automatic else None
        needs = referenced_group_ids(node) if node is not None else set()
        return self._group_links(group.club_id, needs - {group.pk})

    @admin.display(description="used by")
    def used_by(self, group: MembersGroup) -> str:
        """The automatic groups whose rules read this group: they follow its changes."""
        return self._group_links(group.club_id, selectors.dependants_of(group))

    def render_change_form(
        self,
        request: HttpRequest,
        context: dict[str, Any],
        add: bool = False,
        change: bool = False,
        form_url: str = "",
        obj: MembersGroup | None = None,
    ) -> HttpResponse:
        if obj is not None:
            # Three queries whatever the group's size or history (see the selectors).
            context.update(
                chart_days=CHART_DAYS,
                size_chart=size_chart(selectors.group_size_history(obj, days=CHART_DAYS)),
                latest_events=selectors.latest_events(obj, limit=LATEST_EVENTS),
                can_view_members=_can_view_members(request),
            )
        return super().render_change_form(request, context, add, change, form_url, obj)

    def save_model(
        self,
        request: HttpRequest,
        obj: MembersGroup,
        form: forms.ModelForm[MembersGroup],
        change: bool,
    ) -> None:
        data = form.cleaned_data
        fields = {name: data[name] for name in ("name", "type", "description")}
        if change:
            if "audience_conditions" in form.changed_data:
                fields["audience_conditions"] = data["audience_conditions"]
            adopt(obj, services.update_group(group=obj, actor=actor(request), **fields))
            return
        group = services.create_group(
            club=data["club"],
            audience_id=data["audience_id"],
            audience_conditions=data["audience_conditions"],
            actor=actor(request),
            **fields,
        )
        adopt(obj, group)

    def delete_model(self, request: HttpRequest, obj: MembersGroup) -> None:
        services.delete_group(group=obj, source=Source.ADMIN, actor=actor(request))

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[MembersGroup]) -> None:
        # One service call per group records every member's leave; all or none go.
        with transaction.atomic():
            for group in queryset:
                services.delete_group(group=group, source=Source.ADMIN, actor=actor(request))

    def get_deleted_objects(
        self, objs: Sequence[MembersGroup] | QuerySet[MembersGroup], request: HttpRequest
    ) -> tuple[list[Any], dict[str, int], set[str], list[Any]]:
        """Refuse system groups; summarise the rest from their stored counts.

        Django's default would load every membership row of the groups to list them.
        """
        groups = list(objs)
        protected = [
            f"{group} ({group.club}) is a system group, maintained by the system."
            for group in groups
            if group.system
        ]
        if protected:
            return [], {}, set(), protected
        perms_needed = {
            str(self.opts.verbose_name)
            for group in groups
            if not self.has_delete_permission(request, group)
        }
        deleted = [
            format_html(
                '{}: <a href="{}">{}</a>, whose {} members leave it',
                str(self.opts.verbose_name).capitalize(),
                reverse("admin:groups_membersgroup_change", args=[group.pk]),
                group,
                group.members_count,
            )
            for group in groups
        ]
        counts = {
            str(self.opts.verbose_name_plural): len(groups),
            "memberships": sum(group.members_count for group in groups),
        }
        return deleted, counts, perms_needed, []

    def get_urls(self) -> list[URLPattern]:
        members = path(
            "<path:object_id>/members/",
            self.admin_site.admin_view(self.members_view),
            name=f"{self.opts.app_label}_{self.opts.model_name}_members",
        )
        members_csv = path(
            "<path:object_id>/members.csv",
            self.admin_site.admin_view(self.members_csv_view),
            name=f"{self.opts.app_label}_{self.opts.model_name}_members_csv",
        )
        # Before the defaults, whose "<path:object_id>/" would take these URLs.
        return [members, members_csv, *super().get_urls()]

    def members_csv_view(self, request: HttpRequest, object_id: str) -> StreamingHttpResponse:
        """Download a group's members as CSV (any group the user may view, system ones too)."""
        group = self.get_object(request, unquote(object_id))
        if group is None:
            raise Http404("No such members group in your clubs.")
        if not self.has_view_permission(request, group):
            raise PermissionDenied
        return members_csv_response(group, with_body=request.method != "HEAD", escape_formulas=True)

    def members_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """List a group's members and history; on a manual group, add or remove in bulk."""
        group = self.get_object(request, unquote(object_id))
        if group is None:
            raise Http404("No such members group in your clubs.")
        if not self.has_view_permission(request, group):
            raise PermissionDenied
        editable = self.can_change_members(request, group)
        # A bulk change redirects here (POST/redirect/GET), so reloading the page shows its
        # report once instead of sending the change again.
        result = request.session.pop(_result_key(group), None) if request.method == "GET" else None
        # The form keeps the choices of the change just made.
        initial = {key: result[key] for key in ("action", "identifier_type")} if result else None
        form = BulkMembersForm(initial=initial) if editable else None
        if request.method == "POST":
            if not editable:
                raise PermissionDenied
            form = BulkMembersForm(request.POST, request.FILES)
            if form.is_valid():
                data = form.cleaned_data
                change = (
                    services.add_members if data["action"] == "add" else services.remove_members
                )
                try:
                    done = change(
                        group=group,
                        identifier_type=data["identifier_type"],
                        identifiers=data["identifier_list"],
                        source=Source.ADMIN,
                        actor=actor(request),
                    )
                except DomainError as refusal:
                    add_refusal(form, refusal)
                else:
                    request.session[_result_key(group)] = {
                        "action": data["action"],
                        "identifier_type": data["identifier_type"],
                        "counts": _counts(done, data["action"]),
                        "not_found": done.not_found,
                        "invalid": done.invalid,
                        "members_count": done.group.members_count,
                    }
                    # The same query string: a change made from a find-member result
                    # shows that result again, updated.
                    return HttpResponseRedirect(request.get_full_path())
        after = _cursor(request, "after") or 0
        members, next_after = selectors.members_with_join_times(
            group, after=after, per_page=MEMBERS_PER_PAGE
        )
        events, next_before = selectors.history_page(
            group, before=_cursor(request, "before"), per_page=EVENTS_PER_PAGE
        )
        term = request.GET.get("q", "").strip()
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": f"Members of {group}",
            "subtitle": None,
            "original": group,
            "editable": editable,
            "form": form,
            "result": result,
            "term": term,
            "found": selectors.find_members(group, term) if term else None,
            "members": members,
            "first_members_url": _url_with(request, "after", None) if after else None,
            "next_members_url": _url_with(request, "after", next_after) if next_after else None,
            "events": events,
            "newest_events_url": _url_with(request, "before", None)
            if "before" in request.GET
            else None,
            "older_events_url": _url_with(request, "before", next_before) if next_before else None,
            "can_view_members": _can_view_members(request),
        }
        return TemplateResponse(request, "admin/groups/membersgroup/members.html", context)
