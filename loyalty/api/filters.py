"""The API's list filters: django-filter FilterSets, read through the strict wire format.

Each list declares its filters as a ``QueryFilterSet`` of the filters below. The query
reaches them as ``loyalty.api.query`` read it (plain names, arrays gathered, unknown names
refused); their form fields parse each value with the ``loyalty.api.query`` parsers, and a bad
one is 422 in SPEC's details format (not DRF's 400). drf-spectacular documents the
parameters from the same FilterSets (``QueryFilterExtension``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from functools import cache, partial, reduce
from operator import or_
from typing import Any, TypeVar

import django_filters
from django import forms
from django.core.exceptions import ValidationError
from django.db.models import F, Model, Q, QuerySet
from django.http import HttpRequest, QueryDict
from django_filters.rest_framework import DjangoFilterBackend
from drf_spectacular.contrib.django_filters import DjangoFilterExtension
from drf_spectacular.plumbing import build_parameter_type
from drf_spectacular.utils import OpenApiParameter

from loyalty import casefold
from loyalty.api import query
from loyalty.api.components import component
from loyalty.api.pagination import MAX_ID
from loyalty.api.query import BadValue, Parameter
from loyalty.errors import InvalidParameters

_M = TypeVar("_M", bound=Model)
_R = TypeVar("_R")
Parse = Callable[[str], Any]

INTEGER_SCHEMA = {"type": "integer", "minimum": 1, "maximum": MAX_ID}
positive_integer = partial(query.integer, min_value=1, max_value=MAX_ID)


def _invalid(exc: BadValue, index: int | None = None) -> ValidationError:
    params: dict[str, Any] = {"options": exc.options}
    if index is not None:
        params["index"] = index
    return ValidationError(exc.code, code=exc.code, params=params)


class ValueWidget(forms.Widget):
    """One value of the query; None when the parameter is absent (which "" is not)."""

    def value_from_datadict(self, data: Any, files: Any, name: str) -> Any:
        return data.get(name) if name in data else None


class ListWidget(forms.Widget):
    """Every value of an array parameter; None when it is absent."""

    def value_from_datadict(self, data: Any, files: Any, name: str) -> Any:
        return data.getlist(name) if name in data else None


class KeyedWidget(forms.Widget):
    """``name[<key>]`` parameters as ``{key: [values]}``; None when there is none."""

    def value_from_datadict(self, data: Any, files: Any, name: str) -> Any:
        prefix = f"{name}["
        keyed = {key[len(prefix) : -1]: data.getlist(key) for key in data if key.startswith(prefix)}
        return keyed or None


class ValueField(forms.Field):
    """A value parsed by ``parse`` (one of ``loyalty.api.query``'s parsers)."""

    widget: type[forms.Widget] = ValueWidget

    def __init__(self, *, parse: Parse = str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.parse = parse

    def clean(self, value: Any) -> Any:
        if value is None:
            return None
        try:
            return self.parse(value)
        except BadValue as exc:
            raise _invalid(exc) from None


class ListField(ValueField):
    """The values of an array, each parsed; errors keyed by the value's index."""

    widget = ListWidget

    def clean(self, value: Any) -> Any:
        if value is None:
            return None
        parsed, errors = [], []
        for index, raw in enumerate(value):
            try:
                parsed.append(self.parse(raw))
            except BadValue as exc:
                errors.append(_invalid(exc, index))
        if errors:
            raise ValidationError(errors)
        return parsed


class KeyedField(forms.Field):
    widget = KeyedWidget


class QueryFilter(django_filters.Filter):
    """A filter of one query parameter: absent (None) filters nothing, any value does.

    ``schema`` is the OpenAPI schema of a value; ``help_text`` describes the parameter.
    """

    field_class: type[forms.Field] = ValueField
    schema: Mapping[str, Any] = {"type": "string"}
    array = False
    keyed = False

    def __init__(self, *args: Any, schema: Mapping[str, Any] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if schema is not None:
            self.schema = schema

    def filter(self, qs: QuerySet[Any], value: Any) -> QuerySet[Any]:
        if value is None:
            return qs
        return self.get_method(qs)(**{f"{self.field_name}__{self.lookup_expr}": value})

    def parameter(self, name: str) -> Parameter:
        return Parameter(name, array=self.array, keyed=self.keyed)

    def openapi(self, name: str) -> list[dict[str, Any]]:
        """The OpenAPI query parameters of this filter, named as sent."""
        description = self.extra.get("help_text")
        if self.keyed:
            return [self.keyed_parameter(name, description)]
        if self.array:
            return [
                build_parameter_type(
                    name=f"{name}[]",
                    schema={"type": "array", "items": dict(self.schema)},
                    location=OpenApiParameter.QUERY,
                    description=description,
                    style="form",
                    explode=True,
                )
            ]
        return [
            build_parameter_type(
                name=name,
                schema=dict(self.schema),
                location=OpenApiParameter.QUERY,
                description=description,
            )
        ]

    def keyed_parameter(self, name: str, description: str | None) -> dict[str, Any]:
        """``name[<key>]`` as an object of form-exploded members named as sent: generators
        that do not serialise deepObject (openapi-python-client flattens any object into the
        query) send exactly the wire form."""
        example: dict[str, str | list[str]] = {
            f"{name}[first_name]": "Astrid",
            f"{name}[interests][]": ["golf", "chess"],
        }
        value = dict(self.schema)
        schema = component(
            f"{name.title()}Filter",
            {
                "type": "object",
                "description": f"Each key is a whole parameter name, {name}[<key>] (equals "
                f"the value) or {name}[<key>][] (equals any of the values).",
                "additionalProperties": {"oneOf": [value, {"type": "array", "items": value}]},
                "example": example,
            },
        )
        wire = "&".join(f"{key}={v}" for key, values in example.items() for v in _listed(values))
        return build_parameter_type(
            name=name,
            schema=schema,
            location=OpenApiParameter.QUERY,
            description=f"{description} Sent as it goes on the wire: {wire}",
            style="form",
            explode=True,
            examples={"TwoProperties": {"value": example, "summary": wire}},
        )


def _listed(values: str | list[str]) -> list[str]:
    return values if isinstance(values, list) else [values]


class IntegerFilter(QueryFilter):
    """A positive integer id."""

    schema = INTEGER_SCHEMA

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, parse=positive_integer, **kwargs)


class IdsFilter(QueryFilter):
    """Any of these positive integer ids (``in``)."""

    field_class = ListField
    schema = INTEGER_SCHEMA
    array = True

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("lookup_expr", "in")
        super().__init__(*args, parse=positive_integer, **kwargs)


class FlagFilter(QueryFilter):
    """true/false (or 1/0)."""

    schema = {"type": "boolean"}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, parse=query.boolean, **kwargs)


class ChoiceFilter(QueryFilter):
    """One of ``choices``."""

    def __init__(self, *args: Any, choices: Sequence[str], **kwargs: Any) -> None:
        super().__init__(
            *args,
            parse=partial(query.choice, choices=choices),
            schema={"type": "string", "enum": list(choices)},
            **kwargs,
        )


class MomentFilter(QueryFilter):
    """An ISO 8601 date and time (UTC without an offset)."""

    schema = {"type": "string", "format": "date-time"}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, parse=query.moment, **kwargs)


class SearchFilter(QueryFilter):
    """Any of ``expressions`` (field names or expressions) contains the trimmed text, case
    folded for every alphabet (``loyalty.casefold``); an empty text filters nothing."""

    def __init__(self, *expressions: str | Any, **kwargs: Any) -> None:
        super().__init__(parse=str.strip, **kwargs)
        self.expressions = [F(e) if isinstance(e, str) else e for e in expressions]

    def filter(self, qs: QuerySet[Any], value: Any) -> QuerySet[Any]:
        if not value:
            return qs
        return qs.filter(reduce(or_, (Q(casefold.contains(e, value)) for e in self.expressions)))


class KeyedFilter(QueryFilter):
    """``name[<key>]``: its values reach ``method`` as ``{key: [values]}``."""

    field_class = KeyedField
    keyed = True


class QueryFilterSet(django_filters.FilterSet):
    """A list's filters, read from a query as ``loyalty.api.query.read_query`` gives it."""

    @classmethod
    def parameters(cls) -> list[Parameter]:
        return [_query_filter(f).parameter(name) for name, f in cls.base_filters.items()]

    @classmethod
    def given(cls, data: QueryDict) -> bool:
        """Whether ``data`` names any of these filters."""
        names = _parameter_names(cls)
        return any(key.partition("[")[0] in names for key in data)

    # The club whose rows ``queryset`` holds, for filters that read other tables (set by
    # ``apply``).
    club_id: int

    @classmethod
    def apply(cls, data: QueryDict, queryset: QuerySet[_M, _R], club_id: int) -> QuerySet[_M, _R]:
        """``queryset`` (rows of club ``club_id``) narrowed by the filters ``data`` gives, or
        422 naming the bad values."""
        filterset = cls(data, queryset)
        filterset.club_id = club_id
        if not filterset.is_valid():
            raise InvalidParameters(details=_details(filterset.form.errors.as_data()))
        narrowed: QuerySet[_M, _R] = filterset.qs
        return narrowed


@cache
def _parameter_names(filterset: type[QueryFilterSet]) -> frozenset[str]:
    return frozenset(parameter.name for parameter in filterset.parameters())


def _query_filter(filter_: django_filters.Filter) -> QueryFilter:
    assert isinstance(filter_, QueryFilter)  # a QueryFilterSet holds QueryFilters only
    return filter_


def _details(errors: Mapping[str, list[ValidationError]]) -> dict[str, Any]:
    """Form errors in SPEC's details format, array values keyed by their index."""
    details: dict[str, Any] = {}
    for name, problems in errors.items():
        for problem in problems:
            params = problem.params or {}
            leaf = {"error": problem.code, "options": params.get("options", {})}
            if "index" in params:
                details.setdefault(name, {}).setdefault(str(params["index"]), []).append(leaf)
            else:
                details.setdefault(name, []).append(leaf)
    return details


class QueryFilterBackend(DjangoFilterBackend):
    """django-filter's backend on the query as the view read it (``view.query``)."""

    def filter_queryset(
        self, request: HttpRequest, queryset: QuerySet[_M, _R], view: Any
    ) -> QuerySet[_M, _R]:
        filterset_class = self.get_filterset_class(view, queryset)
        if filterset_class is None:
            return queryset
        assert issubclass(filterset_class, QueryFilterSet)
        if not filterset_class.given(view.query):
            # Nothing to filter by: the FilterSet would return the queryset as it is, after
            # deep-copying its filters and building and validating a form.
            return queryset
        return filterset_class.apply(view.query, queryset, club_id=view.club.pk)


class QueryFilterExtension(DjangoFilterExtension):
    """Each filter's parameters as the wire format spells them (``ids[]``, ``properties``)."""

    target_class = "loyalty.api.filters.QueryFilterBackend"
    priority = 1  # before drf-spectacular's own extension, which matches subclasses too

    def resolve_filter_field(
        self,
        auto_schema: Any,
        model: Any,
        filterset_class: Any,
        field_name: str,
        filter_field: Any,
    ) -> list[dict[str, Any]]:
        return _query_filter(filter_field).openapi(field_name)
