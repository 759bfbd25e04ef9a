"""The club-scoped base every app's admin builds on: staff see and change their clubs' rows
only, writes go through services, and a service's refusal reads as a form error."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.contrib.admin.options import IncorrectLookupParameters
from django.contrib.admin.views.main import ChangeList
from django.db import models, router, transaction
from django.db.models import QuerySet
from django.forms.fields import InvalidJSONInput
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import reverse
from django.utils.translation import gettext

from loyalty.api.fields import MAX_JSON_DEPTH, UNSTORABLE, deeper_than, unstorable
from loyalty.api.pagination import MAX_ID
from loyalty.errors import DomainError
from loyalty.models import Club

if TYPE_CHECKING:
    # Generic in django-stubs only: at runtime these classes take no type arguments.
    AnyModelForm = forms.ModelForm[Any]
    AnyModelAdmin = admin.ModelAdmin[Any]
else:
    AnyModelForm = forms.ModelForm
    AnyModelAdmin = admin.ModelAdmin

# groups.models.Source.ADMIN, spelled out: members and loyalty sit below groups and never
# import it.
ADMIN_SOURCE = "admin"


def actor(request: HttpRequest) -> str:
    """Who made a change, as recorded with membership events."""
    return f"user:{request.user.get_username()}"


def managed_clubs(request: HttpRequest) -> QuerySet[Club]:
    """The clubs the logged-in user may see: every club for a superuser, else the assigned."""
    if request.user.is_superuser:
        return Club.objects.all()
    return Club.objects.filter(managers=request.user.pk)


# The most digits an id can have; a longer number is out of range, or above int()'s limit.
_ID_DIGITS = len(str(MAX_ID))


def admin_id(value: str | None) -> int | None:
    """An id from an admin query string or form, or None when it cannot be a row's.

    Only ASCII digits from 1 to a bigint's largest: ``str.isdigit`` is also true of "²",
    which ``int()`` refuses, ``int()`` takes other scripts' digits ("٣"), and a larger
    number fails in PostgreSQL.
    """
    if value is None or not (value.isascii() and value.isdigit()) or len(value) > _ID_DIGITS:
        return None
    number = int(value)
    return number if 0 < number <= MAX_ID else None


def adopt(obj: models.Model, saved: models.Model) -> None:
    """Turn the admin's unsaved instance into the row a service wrote.

    The admin keeps using its own instance after ``save_model`` (log entry, redirect,
    many-to-many fields), so it must carry the saved row's id and values.
    """
    for field in saved._meta.concrete_fields:
        setattr(obj, field.attname, getattr(saved, field.attname))
    obj._state.adding = False
    obj._state.db = saved._state.db


# Readable texts of the error codes the services put in ``details``, for one field first,
# then for any; other codes are spelled out from the code and its options.
FIELD_ERROR_TEXTS = {
    ("email", "invalid"): "Enter a valid email address.",
    ("email", "blank"): "Enter an email or an MSISDN.",
    ("email", "taken"): "Another member of this club has this email.",
    ("msisdn", "invalid"): "Enter a valid international phone number, like +47 407 69 126.",
    ("msisdn", "taken"): "Another member of this club has this MSISDN.",
}
ERROR_TEXTS = {
    "blank": "This field is required.",
    "invalid": "Enter a valid value.",
    "taken": "This value is already taken.",
    "unknown": "Unknown value.",
    "not_an_array": "Enter a JSON array.",
    "not_an_object": "Enter a JSON object.",
    "inclusion": "Not one of the allowed values.",
    "unknown_members_group": "No such members group in this club.",
    "cycle": "These conditions would make a cycle of groups.",
    "not_a_string": "Enter a text.",
    "not_a_non_empty_array": "Enter at least one value.",
    "not_a_pair": "Enter two values.",
    "reversed_range": "The first value is greater than the second.",
}


def _describe(leaf: Any, field: str) -> str:
    if not isinstance(leaf, dict):
        return str(leaf)
    code = str(leaf.get("error", "invalid"))
    if (field, code) in FIELD_ERROR_TEXTS:
        return FIELD_ERROR_TEXTS[field, code]
    text = ERROR_TEXTS.get(code, code.replace("_", " ").capitalize() + ".")
    options = leaf.get("options") or {}
    if options:
        shown = (
            f"{key.replace('_', ' ')}: "
            + (", ".join(map(str, value)) if isinstance(value, list) else str(value))
            for key, value in options.items()
        )
        text = f"{text} ({'; '.join(shown)})"
    return text


def _leaves(details: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    """Walk a ``details`` tree, yielding each error leaf with the keys that lead to it."""
    if isinstance(details, dict):
        for key, subtree in details.items():
            yield from _leaves(subtree, (*path, str(key)))
    elif isinstance(details, list):
        for leaf in details:
            yield path, leaf
    else:
        yield path, details


def error_texts(details: Any) -> Iterator[tuple[tuple[str, ...], str]]:
    """Each error of a ``details`` tree, readable, with the keys that lead to it."""
    for keys, leaf in _leaves(details):
        yield keys, _describe(leaf, "")


def refusal_messages(refusal: DomainError) -> Iterator[tuple[str, str]]:
    """A service's refusal as readable ``(field, message)`` pairs; field "" for the whole."""
    if not refusal.details:
        yield "", refusal.message
        return
    for keys, leaf in _leaves(refusal.details):
        field, *rest = keys or ("",)
        text = _describe(leaf, "" if rest else field)
        where = " > ".join(f"item {key}" if key.isdigit() else key for key in rest)
        yield field, f"{where}: {text}" if where else text


def add_refusal(form: forms.BaseForm, refusal: DomainError) -> None:
    """Show a service's refusal on a form: each error under its field, the rest on top."""
    for field, message in refusal_messages(refusal):
        if field in form.fields:
            form.add_error(field, message)
        else:
            form.add_error(None, f"{field}: {message}" if field else message)


class PrettyJSONField(forms.JSONField):
    """A JSON form field that shows its value indented, for editing by hand, and takes what
    the API takes: nesting as deep, and nothing PostgreSQL cannot store."""

    # A field of a body: one level less than the body, as the API takes it.
    max_depth = MAX_JSON_DEPTH - 1

    def to_python(self, value: Any) -> Any:
        message = f"Nested too deeply: at most {self.max_depth} levels of objects and arrays."
        try:
            data = super().to_python(value)
        except RecursionError:
            # The decoder recurses once per level: thousands of "[" exhaust the stack.
            raise forms.ValidationError(message, code="too_deep") from None
        if deeper_than(data, self.max_depth):
            raise forms.ValidationError(message, code="too_deep")
        if code := unstorable(data):
            raise forms.ValidationError(UNSTORABLE[code], code=code)
        return data

    def bound_data(self, data: Any, initial: Any) -> Any:
        # Shown again as typed when the decoder gives up on it, as for any invalid JSON.
        try:
            return super().bound_data(data, initial)
        except RecursionError:
            return InvalidJSONInput(data)

    def prepare_value(self, value: Any) -> Any:
        if isinstance(value, InvalidJSONInput):
            return value
        text = json.dumps(value, ensure_ascii=False, indent=2, cls=self.encoder)
        try:
            text.encode()
        except UnicodeEncodeError:
            # A lone surrogate (refused on save) cannot go out as UTF-8: shown escaped.
            return json.dumps(value, indent=2, cls=self.encoder)
        return text


class ServiceModelForm(AnyModelForm):
    """A model form whose row is written by a service; ``refusal`` is that service's "no"."""

    refusal: DomainError | None = None

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        assert cleaned is not None  # a ModelForm's clean() returns its cleaned_data
        if self.refusal is not None:
            add_refusal(self, self.refusal)
        return cleaned


# The refusal being shown while a change form is rendered again (see ClubScopedAdmin).
_refusal: ContextVar[DomainError | None] = ContextVar("admin_refusal", default=None)


class IdFilter(admin.SimpleListFilter):
    """Filter by the id of a related row in ``field``; a value that is no id matches nothing.

    Lookups give ids as text, as ``queryset`` reads them back: the facet counts
    (?_facets=True) pass each lookup value to it as it is.
    """

    field: str

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        value = self.value()
        if value is None:
            return queryset
        pk = admin_id(value)
        return queryset.none() if pk is None else queryset.filter(**{self.field: pk})


class ClubFilter(IdFilter):
    """Filter by club, offering only the clubs the user manages."""

    title = "club"
    parameter_name = "club"
    field = "club_id"

    def lookups(
        self, request: HttpRequest, model_admin: admin.ModelAdmin[Any]
    ) -> list[tuple[str, str]]:
        return [(str(club.pk), str(club)) for club in managed_clubs(request)]


class ClubScopedAdmin(AnyModelAdmin):
    """The admin of a club-owned model.

    Staff who are not superusers see and change only the rows of the clubs they manage:
    the queryset, the club choices and every object permission are limited to them, so
    another club's object URL answers like a missing object. Subclasses write through
    services in ``save_model``/``delete_model``; when a service refuses (``DomainError``),
    the whole attempt is rolled back and the form is shown again with the refusal as
    readable errors instead of a server error.
    """

    form: type[forms.ModelForm[Any]] = ServiceModelForm
    formfield_overrides = {models.JSONField: {"form_class": PrettyJSONField}}

    def get_queryset(self, request: HttpRequest) -> QuerySet[Any]:
        queryset = super().get_queryset(request)
        if request.user.is_superuser:
            return queryset
        # A subquery on the managers table: no join, so rows stay unique.
        return queryset.filter(club__in=managed_clubs(request))

    def manages(self, request: HttpRequest, obj: Any) -> bool:
        """True when ``obj`` (or the model as a whole, for None) is in the user's clubs."""
        return (
            obj is None
            or request.user.is_superuser
            or managed_clubs(request).filter(pk=obj.club_id).exists()
        )

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return super().has_view_permission(request, obj) and self.manages(request, obj)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return super().has_change_permission(request, obj) and self.manages(request, obj)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return super().has_delete_permission(request, obj) and self.manages(request, obj)

    def get_readonly_fields(
        self, request: HttpRequest, obj: Any = None
    ) -> list[str] | tuple[str, ...]:
        fields = super().get_readonly_fields(request, obj)
        # A row never moves to another club: no service does that, and ids are club-scoped.
        return fields if obj is None else [*fields, "club"]

    def formfield_for_foreignkey(
        self, db_field: models.ForeignKey[Any, Any], request: HttpRequest, **kwargs: Any
    ) -> forms.ModelChoiceField[Any] | None:
        if db_field.name == "club":
            kwargs["queryset"] = managed_clubs(request)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def get_form(
        self, request: HttpRequest, obj: Any = None, change: bool = False, **kwargs: Any
    ) -> type[forms.ModelForm[Any]]:
        form = super().get_form(request, obj, change, **kwargs)
        refusal = _refusal.get()
        if refusal is None:
            return form
        return type(form.__name__, (form,), {"refusal": refusal})

    def changeform_view(
        self,
        request: HttpRequest,
        object_id: str | None = None,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        try:
            return super().changeform_view(request, object_id, form_url, extra_context)
        except DomainError as refusal:
            # The view's transaction has rolled the attempt back. Validate the same input
            # again with the refusal attached, which makes the form invalid, so nothing is
            # saved and the page shows why.
            token = _refusal.set(refusal)
            try:
                return super().changeform_view(request, object_id, form_url, extra_context)
            finally:
                _refusal.reset(token)

    def get_changelist_instance(self, request: HttpRequest) -> ChangeList:
        # PostgreSQL text cannot hold NUL, so any filter or search on one fails in SQL. Such
        # a query gets Django's answer to a lookup it cannot run: a redirect to "?e=1".
        if any("\x00" in text for key, values in request.GET.lists() for text in (key, *values)):
            raise IncorrectLookupParameters
        return super().get_changelist_instance(request)

    def response_action(
        self, request: HttpRequest, queryset: QuerySet[Any], *args: Any, **kwargs: Any
    ) -> HttpResponse | None:
        # Every club-scoped model has a bigint id: a forged selection holding anything else
        # would fail in SQL, so it counts as no selection, with Django's own warning.
        if any(
            admin_id(value) is None for value in request.POST.getlist(helpers.ACTION_CHECKBOX_NAME)
        ):
            self.message_user(
                request,
                gettext(
                    "Items must be selected in order to perform actions on them. No items "
                    "have been changed."
                ),
                messages.WARNING,
            )
            return None
        # An action (such as "delete selected") is all or nothing: a refusal from a service
        # undoes what the action did before it and is reported on the list. (Django 6 adds
        # an argument, action_location, passed on as given.)
        try:
            with transaction.atomic(using=router.db_for_write(self.model)):
                return super().response_action(request, queryset, *args, **kwargs)
        except DomainError as refusal:
            self.message_user(request, refusal.message, messages.ERROR)
            return HttpResponseRedirect(request.get_full_path())

    def delete_view(
        self, request: HttpRequest, object_id: str, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        try:
            return super().delete_view(request, object_id, extra_context)
        except DomainError as refusal:
            self.message_user(request, refusal.message, messages.ERROR)
            info = self.opts.app_label, self.opts.model_name
            return HttpResponseRedirect(
                reverse("admin:{}_{}_change".format(*info), args=[object_id])
            )
