"""Query-string filters of the members group lists."""

from __future__ import annotations

from typing import Any, TypeVar

from django.db.models import Model, Q, QuerySet
from rest_framework.filters import BaseFilterBackend
from rest_framework.request import Request

from groups.models import EventKind, Source
from loyalty.pagination import (
    INTEGER_ARRAY,
    bool_param,
    choice_param,
    int_list_param,
    int_param,
    query_parameter,
    time_param,
)

# A backend gives back the queryset it was given, narrowed: same model, same rows.
_M = TypeVar("_M", bound=Model)
_R = TypeVar("_R")


class MembersGroupFilter(BaseFilterBackend):
    """Filter by ``ids[]``, ``name``, ``type``, ``automatic``, ``system`` and ``search``."""

    def filter_queryset(
        self, request: Request, queryset: QuerySet[_M, _R], view: Any
    ) -> QuerySet[_M, _R]:
        query = request.query_params
        ids = int_list_param(query, "ids")
        if ids is not None:
            queryset = queryset.filter(pk__in=ids)
        for field in ("name", "type"):
            if field in query:
                queryset = queryset.filter(**{field: query[field]})
        for field in ("automatic", "system"):
            value = bool_param(query, field)
            if value is not None:
                queryset = queryset.filter(**{field: value})
        search = query.get("search", "").strip()
        if search:
            queryset = queryset.filter(Q(name__icontains=search) | Q(description__icontains=search))
        return queryset

    def get_schema_operation_parameters(self, view: Any) -> list[dict[str, Any]]:
        boolean = {"type": "boolean"}
        return [
            query_parameter("ids[]", INTEGER_ARRAY, "Only these group ids."),
            query_parameter("name", {"type": "string"}, "Name equal to this (case-sensitive)."),
            query_parameter("type", {"type": "string"}, "Type equal to this (case-sensitive)."),
            query_parameter("automatic", boolean, "Only automatic (true) or manual (false)."),
            query_parameter("system", boolean, "Only system (true) or other (false) groups."),
            query_parameter(
                "search",
                {"type": "string"},
                "Name or description contains this (case-insensitive).",
            ),
        ]


class MembershipEventFilter(BaseFilterBackend):
    """Filter a group's events by ``member_id``, ``kind``, ``source``, ``since`` and ``until``."""

    def filter_queryset(
        self, request: Request, queryset: QuerySet[_M, _R], view: Any
    ) -> QuerySet[_M, _R]:
        query = request.query_params
        member_id = int_param(query, "member_id")
        if member_id is not None:
            queryset = queryset.filter(member_id=member_id)
        for field, choices in (("kind", EventKind.values), ("source", Source.values)):
            value = choice_param(query, field, choices)
            if value is not None:
                queryset = queryset.filter(**{field: value})
        since, until = time_param(query, "since"), time_param(query, "until")
        if since is not None:
            queryset = queryset.filter(created_at__gte=since)
        if until is not None:
            queryset = queryset.filter(created_at__lt=until)
        return queryset

    def get_schema_operation_parameters(self, view: Any) -> list[dict[str, Any]]:
        moment = {"type": "string", "format": "date-time"}
        return [
            query_parameter("member_id", {"type": "integer"}, "Only this member's events."),
            query_parameter(
                "kind", {"type": "string", "enum": EventKind.values}, "Only joins or leaves."
            ),
            query_parameter(
                "source",
                {"type": "string", "enum": Source.values},
                "Only changes that came through this door.",
            ),
            query_parameter(
                "since", moment, "At or after this time (ISO 8601; UTC without an offset)."
            ),
            query_parameter("until", moment, "Before this time (ISO 8601; UTC without an offset)."),
        ]
