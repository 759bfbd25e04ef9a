"""Admin of members: every write goes through members.services, recorded as the admin's."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django import forms
from django.contrib import admin
from django.db import transaction
from django.db.models import Q, QuerySet
from django.http import HttpRequest

from loyalty.admin import (
    ADMIN_SOURCE,
    ClubFilter,
    ClubScopedAdmin,
    ServiceModelForm,
    actor,
    add_refusal,
    adopt,
)
from loyalty.errors import InvalidParameters
from members import services
from members.models import Member, MemberImport
from members.normalize import NORMALIZERS, InvalidIdentifier

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
    if value is None:
        return []
    if not isinstance(value, list) or not all(
        isinstance(item, int) and not isinstance(item, bool) for item in value
    ):
        raise forms.ValidationError("Enter a JSON array of integers, like [1, 2].")
    return value


def _object(value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise forms.ValidationError('Enter a JSON object, like {"first_name": "Ola"}.')
    return value


class MemberForm(ServiceModelForm):
    """Checks a member's fields with the service's own rules before the service saves it."""

    class Meta:
        model = Member
        fields = EDITABLE_FIELDS

    def clean_properties(self) -> dict[str, Any]:
        return _object(self.cleaned_data["properties"])

    def clean_consents(self) -> dict[str, Any]:
        return _object(self.cleaned_data["consents"])

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
        return cleaned


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
    list_filter = [ClubFilter, "sms_status", "email_status", "push_status"]
    search_fields = ["=email", "=msisdn", "=id"]
    search_help_text = "An exact email, MSISDN (any format, e.g. +47 407 69 126) or member id."
    # The club is shown on every row: one join instead of a query per row.
    list_select_related = ["club"]
    # The unfiltered total would count every member of every club on each page view.
    show_full_result_count = False
    readonly_fields = ["created_at", "updated_at"]

    def get_fields(self, request: HttpRequest, obj: Member | None = None) -> Sequence[str]:
        return EDITABLE_FIELDS if obj is None else [*EDITABLE_FIELDS, *self.readonly_fields]

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

    def _fields(self, form: forms.ModelForm) -> dict[str, Any]:
        return {
            name: form.cleaned_data[name]
            for name in services.MEMBER_FIELDS
            if name in form.cleaned_data
        }

    def save_model(
        self, request: HttpRequest, obj: Member, form: forms.ModelForm, change: bool
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
