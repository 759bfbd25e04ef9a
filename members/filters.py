"""Query-string filters of the members list."""

from __future__ import annotations

import re
from typing import Any, TypeVar

from django.db.models import Model, Q, QuerySet, TextField
from django.db.models.fields.json import KeyTextTransform
from django.db.models.functions import Cast
from django.http import QueryDict
from rest_framework.filters import BaseFilterBackend
from rest_framework.request import Request

from loyalty.errors import InvalidParameters
from loyalty.pagination import INTEGER_ARRAY, int_list_param, query_parameter
from members import selectors
from members.normalize import InvalidIdentifier, normalize_email, normalize_msisdn

PROPERTY_PARAM = re.compile(r"properties\[([^\[\]\x00-\x1f\x7f]+)\](\[\])?")

# A backend gives back the queryset it was given, narrowed: same model, same rows.
_M = TypeVar("_M", bound=Model)
_R = TypeVar("_R")


def filter_properties(queryset: QuerySet[_M, _R], query: QueryDict) -> QuerySet[_M, _R]:
    """``properties[key]=v`` (equal) and ``properties[key][]=v`` (any of), compared as text.

    The stored JSON value is read as text, so ``properties[age]=42`` matches the number 42
    and the string "42" alike.
    """
    for index, param in enumerate(query):
        match = PROPERTY_PARAM.fullmatch(param)
        if match is None:
            if param.startswith("properties"):
                # properties, properties[], properties[a][b] or a key with control characters:
                # a filter without a usable key is refused rather than silently ignored.
                raise InvalidParameters.field("properties", "invalid", parameter=param)
            continue
        key, is_list = match.groups()
        alias = f"property_{index}"
        queryset = queryset.alias(
            **{alias: Cast(KeyTextTransform(key, "properties"), TextField())}
        ).filter(**{f"{alias}__in": query.getlist(param) if is_list else [query[param]]})
    return queryset


def _normalized(name: str, raw: str | None, normalize: Any) -> str | None:
    if raw is None:
        return None
    try:
        return str(normalize(raw))
    except InvalidIdentifier as exc:
        raise InvalidParameters.field(name, "invalid", value=raw) from exc


class MemberFilter(BaseFilterBackend):
    """Filter by ids, email, msisdn, properties, groups and a search term (see the schema)."""

    PARAMETERS = ("ids[]", "email", "msisdn", "members_group_ids[]", "search")

    @classmethod
    def given(cls, query: QueryDict) -> bool:
        """Whether the query names any of these filters."""
        return any(name in cls.PARAMETERS or name.startswith("properties") for name in query)

    def filter_queryset(
        self, request: Request, queryset: QuerySet[_M, _R], view: Any
    ) -> QuerySet[_M, _R]:
        query = request.query_params
        ids = int_list_param(query, "ids")
        if ids is not None:
            queryset = queryset.filter(pk__in=ids)
        email = _normalized("email", query.get("email"), normalize_email)
        if email is not None:
            queryset = queryset.filter(email=email)
        msisdn = _normalized("msisdn", query.get("msisdn"), normalize_msisdn)
        if msisdn is not None:
            queryset = queryset.filter(msisdn=msisdn)
        group_ids = int_list_param(query, "members_group_ids")
        if group_ids is not None:
            queryset = queryset.filter(selectors.in_any_group(group_ids))
        search = query.get("search", "").strip()
        if search:
            queryset = queryset.filter(
                Q(email__icontains=search)
                | Q(msisdn__icontains=search)
                | Q(properties__first_name__icontains=search)
                | Q(properties__last_name__icontains=search)
            )
        return filter_properties(queryset, query)

    def get_schema_operation_parameters(self, view: Any) -> list[dict[str, Any]]:
        return [
            query_parameter("ids[]", INTEGER_ARRAY, "Only these member ids."),
            query_parameter(
                "email",
                {"type": "string"},
                "Equal to this email (normalised: trimmed, lower case).",
            ),
            query_parameter(
                "msisdn",
                {"type": "string"},
                "Equal to this phone number (normalised: +47 407 69 126 -> 4740769126).",
            ),
            {
                "name": "properties",
                "in": "query",
                "required": False,
                "style": "deepObject",
                "explode": True,
                "schema": {"type": "object", "additionalProperties": {"type": "string"}},
                "description": "properties[<key>]=<value>: the property equals the value, "
                "e.g. properties[gender]=female; properties[<key>][]=a&properties[<key>][]=b: "
                "it equals any of them. The stored JSON value is compared as text: 42 matches "
                'the number 42 and the string "42"; booleans read as true/false on PostgreSQL.',
            },
            query_parameter(
                "members_group_ids[]", INTEGER_ARRAY, "Members of any of these groups."
            ),
            query_parameter(
                "search",
                {"type": "string"},
                "Email, msisdn, first_name or last_name contains this (case-insensitive).",
            ),
        ]
