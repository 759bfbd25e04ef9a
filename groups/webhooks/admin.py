"""Admin of webhook endpoints (registered by club staff) and their deliveries (read-only)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html

from groups.models import MembersGroup
from groups.webhooks import outbound, sending
from groups.webhooks.models import WebhookDelivery, WebhookEndpoint
from loyalty.admin import ClubFilter, ClubScopedAdmin, IdFilter, ServiceModelForm, managed_clubs

if TYPE_CHECKING:
    from django.contrib.admin.options import _FieldGroups

MIN_SECRET_LENGTH = 16


class WebhookEndpointForm(ServiceModelForm):
    url = forms.URLField(label="URL", max_length=2000, assume_scheme="https")
    groups = forms.ModelMultipleChoiceField(
        queryset=MembersGroup.objects.none(),
        required=False,
        help_text="Leave empty for every group of the club, present and future.",
    )

    class Meta:
        model = WebhookEndpoint
        fields = [
            "club",
            "url",
            "description",
            "secret",
            "groups",
            "on_join",
            "on_leave",
            "active",
        ]
        help_texts = {
            "secret": "Signs every delivery (X-Webhook-Signature). A new one is generated; "
            "put in the receiver's own instead if it has one (16 characters or more).",
        }

    def __init__(self, *args: Any, request: HttpRequest, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        clubs = managed_clubs(request)
        groups = self.fields["groups"]
        assert isinstance(groups, forms.ModelMultipleChoiceField)  # declared above
        groups.queryset = MembersGroup.objects.filter(club__in=clubs).order_by("club_id", "name")
        if self.instance.pk:
            self.initial["groups"] = self.instance.group_ids

    def clean_secret(self) -> str:
        secret: str = self.cleaned_data["secret"].strip()
        if len(secret) < MIN_SECRET_LENGTH:
            raise forms.ValidationError(
                f"Use at least {MIN_SECRET_LENGTH} characters: the secret is all that proves "
                "a delivery came from this service."
            )
        return secret

    def clean_url(self) -> str:
        url: str = self.cleaned_data["url"]
        try:
            outbound.check_url(url)
        except outbound.RefusedAddress as refusal:
            raise forms.ValidationError(str(refusal)) from refusal
        return url

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        club = cleaned.get("club") or getattr(self.instance, "club", None)
        groups = cleaned.get("groups") or []
        if club is not None and any(group.club_id != club.pk for group in groups):
            self.add_error("groups", "Choose groups of the endpoint's own club.")
        if not (cleaned.get("on_join") or cleaned.get("on_leave")):
            self.add_error("on_leave", "Choose joins, leaves or both.")
        self.instance.group_ids = sorted(group.pk for group in groups)
        return cleaned


@admin.register(WebhookEndpoint)
class WebhookEndpointAdmin(ClubScopedAdmin):
    form = WebhookEndpointForm
    list_display = ["__str__", "club", "url", "groups_listened", "on_join", "on_leave", "active"]
    list_filter = [ClubFilter, "active"]
    search_fields = ["url", "description"]
    list_select_related = ["club"]
    readonly_fields = ["deliveries_link", "created_at", "updated_at"]

    def get_form(
        self, request: HttpRequest, obj: Any = None, change: bool = False, **kwargs: Any
    ) -> type[forms.ModelForm[Any]]:
        form = super().get_form(request, obj, change, **kwargs)

        class RequestForm(form):  # type: ignore[valid-type,misc]
            def __init__(self, *args: Any, **kw: Any) -> None:
                super().__init__(*args, request=request, **kw)

        return RequestForm

    def get_fields(self, request: HttpRequest, obj: Any = None) -> _FieldGroups:
        fields: list[str | list[str] | tuple[str, ...]] = [*WebhookEndpointForm.Meta.fields]
        if obj is not None and not self.has_change_permission(request, obj):
            # Who may only look does not get the means to forge deliveries.
            fields.remove("secret")
        return fields if obj is None else [*fields, *self.readonly_fields]

    @admin.display(description="groups")
    def groups_listened(self, endpoint: WebhookEndpoint) -> str:
        return f"{len(endpoint.group_ids)} chosen" if endpoint.group_ids else "all"

    @admin.display(description="deliveries")
    def deliveries_link(self, endpoint: WebhookEndpoint) -> str:
        url = reverse("admin:groups_webhookdelivery_changelist")
        return format_html('<a href="{}?endpoint={}">Deliveries</a>', url, endpoint.pk)


class EndpointFilter(IdFilter):
    """The endpoints of the clubs the user manages (a plain field filter would list all)."""

    title = "endpoint"
    parameter_name = "endpoint"
    field = "endpoint_id"

    def lookups(
        self, request: HttpRequest, model_admin: admin.ModelAdmin[Any]
    ) -> list[tuple[str, str]]:
        endpoints = WebhookEndpoint.objects.filter(club__in=managed_clubs(request))
        return [(str(endpoint.pk), str(endpoint)) for endpoint in endpoints]


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(ClubScopedAdmin):
    list_display = [
        "id",
        "endpoint",
        "status",
        "events_count",
        "attempts",
        "response_status",
        "created_at",
        "last_attempt_at",
        "next_attempt_at",
    ]
    list_filter = [ClubFilter, "status", EndpointFilter]
    # The endpoint is shown by its URL: one join instead of a query per row.
    list_select_related = ["endpoint"]
    actions = ["resend"]
    fields = [
        "club",
        "endpoint",
        "status",
        "events_count",
        "event_ids",
        "attempts",
        "created_at",
        "last_attempt_at",
        "next_attempt_at",
        "retry_until",
        "delivered_at",
        "response_status",
        "response_body",
        "error",
    ]
    # The same names; typed from the base's ``fields``, they would pass for groups of names.
    readonly_fields = cast("list[str]", fields)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # Deliveries are a record: nothing in them is edited, they are only sent again.
        return False

    def has_resend_permission(self, request: HttpRequest) -> bool:
        # Whoever may change the club's endpoints may have their deliveries sent again.
        return request.user.has_perm("groups.change_webhookendpoint")

    @admin.action(description="Send the selected deliveries again", permissions=["resend"])
    def resend(self, request: HttpRequest, queryset: QuerySet[WebhookDelivery]) -> None:
        ids = sending.resend_deliveries(queryset)
        self.message_user(
            request,
            f"{len(ids)} deliveries will be sent again (pending ones are already on their way).",
            messages.SUCCESS,
        )
