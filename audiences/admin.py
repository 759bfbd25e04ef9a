"""Admin of audiences: names and conditions edited through audiences.services."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from django import forms
from django.contrib import admin
from django.db import transaction
from django.db.models import Q, QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html_join

from audiences import services
from audiences.forms import ConditionsFormField
from audiences.models import Audience
from audiences.widgets import (
    RuleBuilderTarget,
    RuleBuilderUrls,
    RuleBuilderWidget,
    with_rule_builder,
)
from loyalty.admin import ClubFilter, ClubScopedAdmin, ServiceModelForm, adopt

if TYPE_CHECKING:
    from django.contrib.admin.options import _FieldGroups


class AudienceForm(ServiceModelForm):
    conditions = ConditionsFormField(required=False, initial=list)

    class Meta:
        model = Audience
        fields = ["club", "name", "conditions"]


@admin.register(Audience)
class AudienceAdmin(ClubScopedAdmin):
    form = AudienceForm
    list_display = ["name", "club", "used_by", "updated_at"]
    list_filter = [ClubFilter]
    search_fields = ["name"]
    # The club is shown on every row: one join instead of a query per row.
    list_select_related = ["club"]
    readonly_fields = ["used_by", "created_at", "updated_at"]
    delete_selected_confirmation_template = "admin/refusable_delete_selected_confirmation.html"

    def get_queryset(self, request: HttpRequest) -> QuerySet[Audience]:
        # The groups using each audience are listed on every row: one query per page.
        return super().get_queryset(request).prefetch_related("groups")

    def get_fields(self, request: HttpRequest, obj: Audience | None = None) -> _FieldGroups:
        fields: _FieldGroups = ["club", "name", "conditions"]
        return fields if obj is None else [*fields, *self.readonly_fields]

    def get_form(
        self, request: HttpRequest, obj: Any = None, change: bool = False, **kwargs: Any
    ) -> type[forms.ModelForm[Any]]:
        form = super().get_form(request, obj, change, **kwargs)
        urls = self.rule_builder_urls()
        if urls is None:
            return form
        builder = RuleBuilderWidget(
            club_id=None if obj is None else obj.club_id,
            target=RuleBuilderTarget("audience", None if obj is None else obj.pk),
            urls=urls,
            empty="[]",
        )
        return with_rule_builder(form, "conditions", builder)

    def rule_builder_urls(self) -> RuleBuilderUrls | None:
        """The rule builder's endpoints; None: the conditions are edited as JSON only.

        They are the groups admin's, which registers this admin again with them
        (``groups.admin.audiences``): audiences know nothing of groups.
        """
        return None

    def get_readonly_fields(
        self, request: HttpRequest, obj: Audience | None = None
    ) -> list[str] | tuple[str, ...]:
        fields = super().get_readonly_fields(request, obj)
        # A manual or system group's audience is its own rule; the service refuses changes.
        if obj is not None and obj.groups.filter(Q(automatic=False) | Q(system=True)).exists():
            return [*fields, "conditions"]
        return fields

    def has_change_permission(self, request: HttpRequest, obj: Audience | None = None) -> bool:
        # A system group's audience is the system's, like the group (read-only, as it is).
        system = obj is not None and services.of_system_group(obj)
        return not system and super().has_change_permission(request, obj)

    def has_delete_permission(self, request: HttpRequest, obj: Audience | None = None) -> bool:
        # An audience used by a group cannot be destroyed (SPEC section 2: 405).
        in_use = obj is not None and obj.groups.exists()
        return not in_use and super().has_delete_permission(request, obj)

    @admin.display(description="used by groups")
    def used_by(self, audience: Audience) -> str:
        return (
            format_html_join(
                ", ",
                '<a href="{}">{}</a>',
                (
                    (reverse("admin:groups_membersgroup_change", args=[group.pk]), group)
                    for group in audience.groups.all()
                ),
            )
            or self.get_empty_value_display()
        )

    def save_model(
        self, request: HttpRequest, obj: Audience, form: forms.ModelForm[Audience], change: bool
    ) -> None:
        data = form.cleaned_data
        if change:
            fields = {
                name: data[name] for name in form.changed_data if name in ("name", "conditions")
            }
            adopt(obj, services.update_audience(audience=obj, **fields))
        else:
            adopt(
                obj,
                services.create_audience(
                    club=data["club"], name=data["name"], conditions=data["conditions"]
                ),
            )

    def delete_model(self, request: HttpRequest, obj: Audience) -> None:
        services.delete_audience(audience=obj)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Audience]) -> None:
        # Through the service, which refuses an audience in use; all or none go.
        with transaction.atomic():
            for audience in queryset:
                services.delete_audience(audience=audience)

    def get_deleted_objects(
        self, objs: Sequence[Audience] | QuerySet[Audience], request: HttpRequest
    ) -> tuple[list[Any], dict[str, int], set[str], list[Any]]:
        """Refuse the whole deletion when any selected audience is used by a group."""
        in_use = [
            f"{audience} ({audience.club}) is used by "
            + ", ".join(str(group) for group in audience.groups.all())
            + "."
            for audience in objs
            if audience.groups.all()
        ]
        if in_use:
            return [], {}, set(), in_use
        return super().get_deleted_objects(objs, request)
