"""Admin of members: every write goes through members.services, recorded as the admin's."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from django import forms
from django.apps import apps
from django.contrib import admin
from django.contrib.admin.views.main import ChangeList
from django.core.paginator import Paginator
from django.db import models, transaction
from django.db.models import Count, Exists, F, OuterRef, Q, QuerySet
from django.http import HttpRequest
from django.template.defaultfilters import pluralize
from django.urls import reverse
from django.utils import timezone
from django.utils.formats import date_format
from django.utils.functional import cached_property
from django.utils.html import format_html, format_html_join

from loyalty.admin import (
    ADMIN_SOURCE,
    ClubFilter,
    ClubScopedAdmin,
    ServiceModelForm,
    actor,
    add_refusal,
    admin_id,
    adopt,
    managed_clubs,
)
from loyalty.db import InArray
from loyalty.errors import InvalidParameters
from loyalty.pagination import MAX_ID
from members import services
from members.models import Member, MemberImport
from members.normalize import NORMALIZERS, InvalidIdentifier, stored_consents
from members.selectors import ALL_MEMBERS_KEY

if TYPE_CHECKING:
    from django.contrib.admin.options import _FieldGroups

    # Generic in django-stubs only: at runtime Paginator takes no type arguments.
    MemberPaginatorBase = Paginator[Member]
else:
    MemberPaginatorBase = Paginator

EDITABLE_FIELDS = [
    "club",
    "email",
    "msisdn",
    "sms_status",
    "email_status",
    "push_status",
    "properties",
    "consents",
    "subunit_ids",
    "favorite_stores",
]


def _integer_list(value: Any) -> list[int]:
    """A list of ids, as the API takes them: each from 1 to the largest bigint."""
    if value is None:
        return []
    if not isinstance(value, list) or not all(
        isinstance(item, int) and not isinstance(item, bool) and 0 < item <= MAX_ID
        for item in value
    ):
        raise forms.ValidationError(
            f"Enter a JSON array of whole numbers from 1 to {MAX_ID}, like [1, 2]."
        )
    return value


def _object(value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise forms.ValidationError('Enter a JSON object, like {"first_name": "Ola"}.')
    return value


def _groups_model(name: str) -> type[models.Model]:
    # Looked up by name: members sit below groups (the app layering) and never import it.
    # Callers query its _default_manager, its ``objects``, which any model type has.
    return apps.get_model("groups", name)


def _group_url(group_id: int) -> str:
    return reverse("admin:groups_membersgroup_change", args=[group_id])


# Beyond this many rows a filtered members list is not counted exactly.
COUNT_CAP = 10_000
# The list's own parameters; any other narrows it past what the stored counts know.
# "_facets" is ignored, as the list never shows facet counts.
LIST_PARAMETERS = {"p", "o", "_facets"}


def in_clubs(club_ids: list[int]) -> InArray:
    """``club_id`` tested against one array of ids (``= ANY(...)`` on PostgreSQL).

    Unlike ``club_id = 15`` or ``IN (subquery)``, it leaves ``club_id`` a sort key, so the
    list's order (club, id) walks the club-first index and a page costs the same in a club
    of a million members; with an equality the planner walks the primary key instead and
    skips every other club's rows first.
    """
    return InArray(F("club_id"), club_ids)


class MemberClubFilter(ClubFilter):
    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        value = self.value()
        if value is None:
            return queryset
        club_id = admin_id(value)
        return queryset.none() if club_id is None else queryset.filter(in_clubs([club_id]))


class MemberPaginator(MemberPaginatorBase):
    """Pages members without counting a club's million rows.

    ``known`` is the exact total when the stored counts have it (a club's "All members",
    a group's count); otherwise rows are counted up to ``COUNT_CAP`` and ``capped`` says
    there are more than that.
    """

    object_list: QuerySet[Member]

    def __init__(self, object_list: QuerySet[Member], per_page: int, known: int | None) -> None:
        super().__init__(object_list, per_page)
        self.known = known
        self.capped = False

    @cached_property
    def count(self) -> int:
        if self.known is not None:
            return self.known
        counted = self.object_list[: COUNT_CAP + 1].count()
        self.capped = counted > COUNT_CAP
        return min(counted, COUNT_CAP)


class GroupFilter(admin.SimpleListFilter):
    """Filter by members group: the groups of the chosen club, else of every managed club."""

    title = "members group"
    parameter_name = "group"

    # Ids as text: see ClubFilter.lookups.
    def lookups(
        self, request: HttpRequest, model_admin: admin.ModelAdmin[Any]
    ) -> list[tuple[str, str]]:
        groups = _groups_model("MembersGroup")._default_manager.filter(
            club__in=managed_clubs(request)
        )
        club_id = admin_id(request.GET.get(ClubFilter.parameter_name))
        if club_id is not None:
            groups = groups.filter(club_id=club_id)
        rows = groups.order_by("club__name", "name", "pk").values_list("pk", "name", "club__name")
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
        if group_id is None:
            return queryset.none()
        club_id = (
            _groups_model("MembersGroup")
            ._default_manager.filter(pk=group_id, club__in=managed_clubs(request))
            .values_list("club_id", flat=True)
            .first()
        )
        if club_id is None:
            return queryset.none()
        # A semi-join on the membership index (club, group, member), no ids in Python. The
        # club as a constant, not the member's: the planner then seeks the group's rows
        # instead of walking every club's memberships.
        memberships = _groups_model("Membership")._default_manager.filter(
            club_id=club_id, group_id=group_id, member_id=OuterRef("pk")
        )
        return queryset.filter(Exists(memberships))


class MemberChangeList(ChangeList):
    """The members list, with each shown member's groups fetched in one query per page."""

    def get_results(self, request: HttpRequest) -> None:
        super().get_results(request)
        members = list(self.result_list)
        # Both columns of the index (club, member), so only this page's rows are read.
        rows = (
            _groups_model("Membership")
            ._default_manager.filter(
                club_id__in={member.club_id for member in members},
                member_id__in=[member.pk for member in members],
            )
            .order_by("group__name", "group_id")
            .values_list("member_id", "group_id", "group__name")
        )
        groups: dict[int, list[tuple[int, str]]] = {member.pk: [] for member in members}
        for member_id, group_id, name in rows:
            groups[member_id].append((group_id, name or f"group {group_id}"))
        for member in members:
            member.page_groups = groups[member.pk]
        self.result_list = members


class MemberForm(ServiceModelForm):
    """Checks a member's fields with the service's own rules before the service saves it."""

    class Meta:
        model = Member
        fields = EDITABLE_FIELDS

    def clean_properties(self) -> dict[str, Any]:
        return _object(self.cleaned_data["properties"])

    def clean_consents(self) -> dict[str, Any]:
        consents, refused = stored_consents(
            _object(self.cleaned_data["consents"]), timezone.now().isoformat()
        )
        if refused:
            raise forms.ValidationError(
                [
                    f"{name}.{exc.part or ''}".rstrip(".") + f": {exc}"
                    for name, exc in refused.items()
                ]
            )
        return consents

    def clean_subunit_ids(self) -> list[int]:
        return _integer_list(self.cleaned_data["subunit_ids"])

    def clean_favorite_stores(self) -> list[int]:
        return _integer_list(self.cleaned_data["favorite_stores"])

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        if "email" in self.errors or "msisdn" in self.errors:
            return cleaned
        # Normalised before the model's checks run, so "Ann@Example.com" is taken as
        # "ann@example.com" and compared with the club's other members as such.
        probe = Member(email=cleaned.get("email"), msisdn=cleaned.get("msisdn"))
        try:
            services.normalize_member(probe)
        except InvalidParameters as refusal:
            add_refusal(self, refusal)
        else:
            cleaned["email"], cleaned["msisdn"] = probe.email, probe.msisdn
            self._refuse_taken(cleaned)
        return cleaned

    def _refuse_taken(self, cleaned: dict[str, Any]) -> None:
        """Refuse an email or MSISDN another member of the club has, as the service does.

        On the add form the club is a field, so the model's own check of its unique
        constraints would otherwise run and show the bare "Constraint … is violated."; a
        field with an error is left out of that check.
        """
        club = cleaned.get("club")
        club_id = club.pk if club is not None else self.instance.club_id
        if club_id is None:
            return
        others = Member.objects.filter(club_id=club_id).exclude(pk=self.instance.pk)
        details = {
            field: [{"error": "taken"}]
            for field in ("email", "msisdn")
            if cleaned[field] is not None and others.filter(**{field: cleaned[field]}).exists()
        }
        if details:
            add_refusal(self, InvalidParameters(details=details))


@admin.register(Member)
class MemberAdmin(ClubScopedAdmin):
    form = MemberForm
    list_display = [
        "id",
        "email",
        "msisdn",
        "club",
        "sms_status",
        "email_status",
        "push_status",
        "groups",
        "created_at",
    ]
    list_display_links = ["id", "email"]
    list_filter = [MemberClubFilter, GroupFilter, "sms_status", "email_status", "push_status"]
    search_fields = ["=email", "=msisdn", "=id"]
    search_help_text = "An exact email, MSISDN (any format, e.g. +47 407 69 126) or member id."
    # The club is shown on every row: one join instead of a query per row.
    list_select_related = ["club"]
    # The unfiltered total would count every member of every club on each page view.
    show_full_result_count = False
    # "Show counts" would count the club's members once per club, group and status choice.
    show_facets = admin.ShowFacets.NEVER
    # The order of the index (club, id); sorting a club by another column sorts every row.
    ordering = ["club_id", "id"]
    sortable_by = []
    readonly_fields = ["member_groups", "created_at", "updated_at"]

    def get_fields(self, request: HttpRequest, obj: Member | None = None) -> _FieldGroups:
        return [*EDITABLE_FIELDS] if obj is None else [*EDITABLE_FIELDS, *self.readonly_fields]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Member]:
        # The managed clubs as a list of ids rather than ClubScopedAdmin's subquery, which
        # hides them from the planner (see in_clubs); the same rows either way.
        queryset = admin.ModelAdmin.get_queryset(self, request)
        if request.user.is_superuser:
            return queryset
        return queryset.filter(in_clubs(list(managed_clubs(request).values_list("pk", flat=True))))

    def get_changelist(self, request: HttpRequest, **kwargs: Any) -> type[ChangeList]:
        return MemberChangeList

    def get_paginator(
        self,
        request: HttpRequest,
        queryset: QuerySet[Member],
        per_page: int,
        orphans: int = 0,
        allow_empty_first_page: bool = True,
    ) -> MemberPaginator:
        return MemberPaginator(queryset, per_page, known=self.known_count(request))

    def known_count(self, request: HttpRequest) -> int | None:
        """The list's exact length from stored counts, when only club or group narrow it.

        A club's members are its "All members" group; a group's are its members_count.
        """
        narrowing = set(request.GET) - LIST_PARAMETERS
        if not narrowing <= {MemberClubFilter.parameter_name, GroupFilter.parameter_name}:
            return None
        groups = _groups_model("MembersGroup")._default_manager.filter(
            club__in=managed_clubs(request)
        )
        for name, lookup in [
            (MemberClubFilter.parameter_name, "club_id"),
            (GroupFilter.parameter_name, "pk"),
        ]:
            if name in request.GET:
                value = admin_id(request.GET[name])
                if value is None:
                    return 0
                groups = groups.filter(**{lookup: value})
        if GroupFilter.parameter_name not in narrowing:
            groups = groups.filter(system_key=ALL_MEMBERS_KEY)
        total: int = sum(groups.values_list("members_count", flat=True))
        return total

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
        """Every group of the member with when it joined, in one query on (club, member)."""
        memberships = (
            _groups_model("Membership")
            ._default_manager.filter(club_id=member.club_id, member_id=member.pk)
            .order_by("group__name", "group_id")
            .values_list("group_id", "group__name", "joined_at")
        )
        items = format_html_join(
            "",
            '<li><a href="{}">{}</a>, joined {}</li>',
            (
                (
                    _group_url(group_id),
                    name or f"group {group_id}",
                    date_format(timezone.localtime(joined_at), "DATETIME_FORMAT"),
                )
                for group_id, name, joined_at in memberships
            ),
        )
        return format_html('<ul class="member-groups">{}</ul>', items) if items else "None"

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[Member], search_term: str
    ) -> tuple[QuerySet[Member], bool]:
        """Match the term exactly, as each kind of identifier it can be read as.

        Exact lookups on normalised values use the club-first unique indexes; a substring
        search would scan every member.
        """
        term = search_term.strip()
        if not term:
            return queryset, False
        matches = Q(pk__in=[])
        for field, normalize in NORMALIZERS.items():
            try:
                matches |= Q(**{field: normalize(term)})
            except InvalidIdentifier:
                continue
        return queryset.filter(matches), False

    def _fields(self, form: forms.ModelForm[Member]) -> dict[str, Any]:
        return {
            name: form.cleaned_data[name]
            for name in services.MEMBER_FIELDS
            if name in form.cleaned_data
        }

    def save_model(
        self, request: HttpRequest, obj: Member, form: forms.ModelForm[Member], change: bool
    ) -> None:
        if change:
            services.update_member(
                member=obj, source=ADMIN_SOURCE, actor=actor(request), **self._fields(form)
            )
            return
        member = services.create_member(
            club=form.cleaned_data["club"],
            source=ADMIN_SOURCE,
            actor=actor(request),
            **self._fields(form),
        )
        adopt(obj, member)

    def get_deleted_objects(
        self, objs: Sequence[Member] | QuerySet[Member], request: HttpRequest
    ) -> tuple[list[Any], dict[str, int], set[str], list[Any]]:
        """List the members with how many groups each leaves, counted in one query.

        Django's default would load and list every membership row of every member. No
        permission beyond the one the views check first is needed: the service removes the
        memberships.
        """
        members = list(objs)
        groups = dict(
            _groups_model("Membership")
            ._default_manager.filter(
                club_id__in={member.club_id for member in members},
                member_id__in=[member.pk for member in members],
            )
            .values("member_id")
            .annotate(groups=Count("*"))
            .values_list("member_id", "groups")
        )
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

    def delete_model(self, request: HttpRequest, obj: Member) -> None:
        services.delete_member(member=obj, source=ADMIN_SOURCE, actor=actor(request))

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Member]) -> None:
        # One service call per member, so each leave is recorded and every group count
        # moves; all or none of the selection goes.
        with transaction.atomic():
            for member in queryset:
                services.delete_member(member=member, source=ADMIN_SOURCE, actor=actor(request))


@admin.register(MemberImport)
class MemberImportAdmin(ClubScopedAdmin):
    """Imports sent through the API, read-only: they are the API's record of what it did."""

    list_display = [
        "import_id",
        "club",
        "status",
        "operation",
        "created",
        "updated",
        "unchanged",
        "rejected",
        "created_at",
        "finished_at",
    ]
    list_filter = [ClubFilter, "status", "operation"]
    search_fields = ["import_id"]
    # The club is shown on every row: one join instead of a query per row.
    list_select_related = ["club"]
    exclude = ["payload"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: MemberImport | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: MemberImport | None = None) -> bool:
        return False
