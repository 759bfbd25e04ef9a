"""Admin of members: every write goes through members.services, recorded as the admin's."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django import forms
from django.contrib import admin
from django.core.paginator import Paginator
from django.db import transaction
from django.db.models import F, QuerySet
from django.http import HttpRequest
from django.utils import timezone
from django.utils.functional import cached_property

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
from loyalty.api.pagination import MAX_ID
from loyalty.db import InArray
from loyalty.errors import InvalidParameters
from members import selectors, services
from members.models import Member, MemberImport
from members.normalize import stored_consents

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
        "created_at",
    ]
    list_display_links = ["id", "email"]
    list_filter = [MemberClubFilter, "sms_status", "email_status", "push_status"]
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
    readonly_fields = ["created_at", "updated_at"]

    def get_fields(self, request: HttpRequest, obj: Member | None = None) -> _FieldGroups:
        return [*EDITABLE_FIELDS] if obj is None else [*EDITABLE_FIELDS, *self.readonly_fields]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Member]:
        # The managed clubs as a list of ids rather than ClubScopedAdmin's subquery, which
        # hides them from the planner (see in_clubs); the same rows either way.
        queryset = admin.ModelAdmin.get_queryset(self, request)
        if request.user.is_superuser:
            return queryset
        return queryset.filter(in_clubs(list(managed_clubs(request).values_list("pk", flat=True))))

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
        """The list's exact length when stored counts know it, else None (counted up to
        ``COUNT_CAP``). The groups app knows a club's and a group's (groups.admin.members)."""
        return None

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
        return queryset.filter(selectors.identified_by(term)), False

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
