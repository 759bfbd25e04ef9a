"""List mechanics shared by every list endpoint: query parameters, sorting and pagination."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

from django.db.models import F, Model, QuerySet
from django.db.models.expressions import OrderBy
from django.http import QueryDict
from drf_spectacular.utils import OpenApiParameter
from rest_framework.filters import BaseFilterBackend
from rest_framework.pagination import BasePagination
from rest_framework.request import Request
from rest_framework.response import Response

from loyalty.api.query import BadValue, Parameter, integer
from loyalty.errors import InvalidParameters

PER_PAGE_DEFAULT = 100
PER_PAGE_MAX = 1000
# Largest value of a PostgreSQL bigint: a bigger id cannot exist, and would fail in SQL.
MAX_ID = 2**63 - 1
# Beyond it the page's offset would not fit PostgreSQL's bigint.
PAGE_NO_MAX = MAX_ID // PER_PAGE_MAX
DIRECTIONS = ("asc", "desc")
# The query parameters of a paged list, and of a sorted one (loyalty.api.query).
PAGE_QUERY = (Parameter("page_no"), Parameter("per_page"))
SORT_QUERY = (Parameter("sort_by", array=True), Parameter("sort_directions", array=True))


def parse_int(name: str, raw: str, *, min_value: int = 1, max_value: int = MAX_ID) -> int:
    """Parse one integer query value, or refuse it with 422 under ``name``."""
    try:
        return integer(raw, min_value=min_value, max_value=max_value)
    except BadValue as exc:
        raise InvalidParameters(details={name: exc.leaf()}) from None


def int_param(
    query: QueryDict, name: str, *, min_value: int = 1, max_value: int = MAX_ID
) -> int | None:
    raw = query.get(name)
    return None if raw is None else parse_int(name, raw, min_value=min_value, max_value=max_value)


def parsed_param(query: QueryDict, name: str, parse: Callable[[str], _V]) -> _V | None:
    """The value of ``name`` parsed by ``parse`` (a ``loyalty.api.query`` parser), None when
    absent, or 422 under ``name``."""
    raw = query.get(name)
    if raw is None:
        return None
    try:
        return parse(raw)
    except BadValue as exc:
        raise InvalidParameters(details={name: exc.leaf()}) from None


def query_parameter(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    """An OpenAPI query parameter; ``name[]`` arrays repeat the name (``explode``)."""
    parameter = {"name": name, "in": "query", "required": False, "description": description}
    if schema.get("type") == "array":
        parameter.update(style="form", explode=True)
    return {**parameter, "schema": schema}


@dataclass(frozen=True)
class PageRequest:
    page_no: int
    per_page: int

    @classmethod
    def from_query(cls, query: QueryDict) -> PageRequest:
        page_no = int_param(query, "page_no", max_value=PAGE_NO_MAX) or 1
        per_page = int_param(query, "per_page", max_value=PER_PAGE_MAX) or PER_PAGE_DEFAULT
        return cls(page_no=page_no, per_page=per_page)

    @property
    def offset(self) -> int:
        return (self.page_no - 1) * self.per_page


def pagination_info(*, total_count: int, page: PageRequest) -> dict[str, Any]:
    """The SPEC's ``pagination_info``; page 1 of an empty list is its first and last page."""
    total_pages = math.ceil(total_count / page.per_page)
    last_page = max(total_pages, 1)
    current = page.page_no
    out_of_range = current > last_page
    return {
        "total_count": total_count,
        "per_page": page.per_page,
        "total_pages": total_pages,
        "current_page": current,
        "next_page": current + 1 if current < total_pages else None,
        "prev_page": current - 1 if 1 < current <= last_page else None,
        "is_first_page": current == 1,
        "is_last_page": current == last_page,
        "is_out_of_range": out_of_range,
    }


def after_id_param(query: QueryDict) -> int | None:
    """``after_id`` of a key-set walk (0 starts it); it replaces ``page_no``."""
    after_id = int_param(query, "after_id", min_value=0)
    if after_id is not None and "page_no" in query:
        raise InvalidParameters(
            details={"page_no": [{"error": "not_allowed_with_after_id", "options": {}}]}
        )
    return after_id


def keyset_pagination_info(
    *, total_count: int, per_page: int, is_first_page: bool, next_after_id: int | None
) -> dict[str, Any]:
    """``pagination_info`` of a key-set page: page numbers are unknown, ``next_after_id`` added."""
    return {
        "total_count": total_count,
        "per_page": per_page,
        "total_pages": math.ceil(total_count / per_page),
        "current_page": None,
        "next_page": None,
        "prev_page": None,
        "is_first_page": is_first_page,
        "is_last_page": next_after_id is None,
        "is_out_of_range": False,
        "next_after_id": next_after_id,
    }


PAGINATION_INFO_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": [
        "total_count",
        "per_page",
        "total_pages",
        "current_page",
        "next_page",
        "prev_page",
        "is_first_page",
        "is_last_page",
        "is_out_of_range",
    ],
    "properties": {
        "total_count": {"type": "integer"},
        "per_page": {"type": "integer"},
        "total_pages": {"type": "integer", "description": "0 for an empty list."},
        "current_page": {
            "type": "integer",
            "nullable": True,
            "description": "null when walking a group's members with after_id.",
        },
        "next_page": {"type": "integer", "nullable": True},
        "prev_page": {"type": "integer", "nullable": True},
        "is_first_page": {"type": "boolean"},
        "is_last_page": {"type": "boolean"},
        "is_out_of_range": {"type": "boolean"},
        "next_after_id": {
            "type": "integer",
            "nullable": True,
            "description": "Only when walking a group's members with after_id: the after_id "
            "of the next page, null on the last one.",
        },
    },
}

PAGE_PARAMETERS = [
    query_parameter(
        "page_no",
        {"type": "integer", "minimum": 1, "maximum": PAGE_NO_MAX, "default": 1},
        "Page number.",
    ),
    query_parameter(
        "per_page",
        {"type": "integer", "minimum": 1, "maximum": PER_PAGE_MAX, "default": PER_PAGE_DEFAULT},
        f"Items per page, at most {PER_PAGE_MAX} (more: 422).",
    ),
]


def paginated_schema(resource_key: str, items: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "object",
        "required": [resource_key, "pagination_info"],
        "properties": {resource_key: items, "pagination_info": PAGINATION_INFO_SCHEMA},
    }


_M = TypeVar("_M", bound=Model)
_R = TypeVar("_R")
_V = TypeVar("_V")


class ClubPagination(BasePagination):
    """``page_no``/``per_page`` pages under ``resource_key``, with the SPEC's pagination_info.

    The page is read in two steps, the ids first and then their rows, so that a deep page
    skips over index entries rather than whole rows (PERFORMANCE.md, deferred join).
    """

    resource_key: ClassVar[str]

    def paginate_queryset(
        self, queryset: QuerySet[_M, _R] | Sequence[_R], request: Request, view: Any = None
    ) -> list[_R]:
        assert isinstance(queryset, QuerySet)  # the views page querysets only
        page = PageRequest.from_query(view.query)
        # A view that knows the total (e.g. from a stored count) sets ``total_count``.
        total = getattr(view, "total_count", None)
        total = queryset.count() if total is None else total
        self.info = pagination_info(total_count=total, page=page)
        ids = list(queryset.values_list("pk", flat=True)[page.offset : page.offset + page.per_page])
        return list(queryset.filter(pk__in=ids)) if ids else []

    def get_paginated_response(self, data: Any) -> Response:
        return Response({self.resource_key: data, "pagination_info": self.info})

    def get_paginated_response_schema(self, schema: dict[str, Any]) -> dict[str, Any]:
        return paginated_schema(self.resource_key, schema)

    def get_schema_operation_parameters(self, view: Any) -> list[dict[str, Any]]:
        return PAGE_PARAMETERS


def paginated_by(resource_key: str) -> type[ClubPagination]:
    """A pagination class putting the page's items under ``resource_key``."""
    return type(
        f"{resource_key.title().replace('_', '')}Pagination",
        (ClubPagination,),
        {"resource_key": resource_key},
    )


@dataclass(frozen=True)
class SortKey:
    field: str
    descending: bool


def sort_keys(query: QueryDict, sortable: Sequence[str]) -> list[SortKey]:
    """Parse ``sort_by[]``/``sort_directions[]`` pairs (read by ``loyalty.api.query``: plain
    names); a missing direction is ``asc``."""
    fields = query.getlist("sort_by")
    directions = query.getlist("sort_directions")
    details: dict[str, Any] = {}
    for index, field in enumerate(fields):
        if field not in sortable:
            details.setdefault("sort_by", {})[str(index)] = [
                {"error": "invalid_choice", "options": {"choices": list(sortable)}}
            ]
    for index, direction in enumerate(directions):
        if direction.lower() not in DIRECTIONS:
            details.setdefault("sort_directions", {})[str(index)] = [
                {"error": "invalid_choice", "options": {"choices": list(DIRECTIONS)}}
            ]
    for index in range(len(fields), len(directions)):
        details.setdefault("sort_directions", {})[str(index)] = [
            {"error": "without_sort_by", "options": {}}
        ]
    if details:
        raise InvalidParameters(details=details)
    return [
        SortKey(field, index < len(directions) and directions[index].lower() == "desc")
        for index, field in enumerate(fields)
    ]


def sort_parameters(sortable: Sequence[str]) -> list[dict[str, Any]]:
    return [
        query_parameter(
            "sort_by[]",
            {"type": "array", "items": {"type": "string", "enum": list(sortable)}},
            "Fields to sort by, in order of precedence. Default: id.",
        ),
        query_parameter(
            "sort_directions[]",
            {"type": "array", "items": {"type": "string", "enum": list(DIRECTIONS)}},
            "The direction of each sort_by[] field, by position; a missing one is asc.",
        ),
    ]


def sort_by_parameters(fields: Sequence[str], description: str) -> list[OpenApiParameter]:
    """The schema of ``sort_by[]``/``sort_directions[]`` for a list sorted by these fields."""
    return [
        OpenApiParameter(
            "sort_by[]",
            {"type": "array", "items": {"type": "string", "enum": list(fields)}},
            explode=True,
            description=description,
        ),
        OpenApiParameter(
            "sort_directions[]",
            {"type": "array", "items": {"type": "string", "enum": list(DIRECTIONS)}},
            explode=True,
            description="asc (default) or desc, by position.",
        ),
    ]


def order_by(model: type[Model], key: SortKey) -> OrderBy:
    name = "pk" if key.field == "id" else key.field
    # Nulls last on both databases, so that a page is the same on SQLite and PostgreSQL.
    nulls_last = True if name != "pk" and model._meta.get_field(name).null else None
    field = F(name)
    return field.desc(nulls_last=nulls_last) if key.descending else field.asc(nulls_last=nulls_last)


def sorted_by(queryset: QuerySet[Any], keys: Sequence[SortKey]) -> QuerySet[Any]:
    """A club's rows in the order of ``keys``, then by id."""
    if not any(key.field == "id" for key in keys):
        keys = [*keys, SortKey("id", descending=False)]  # a total order: pages never overlap
    # The club first, as every index of a club's rows starts with it (one club per list).
    return queryset.order_by("club_id", *(order_by(queryset.model, key) for key in keys))


class SortOrder(BaseFilterBackend):
    """Order a list by the view's ``sortable_fields`` named in ``sort_by[]``, then by id."""

    def filter_queryset(
        self, request: Request, queryset: QuerySet[Any], view: Any
    ) -> QuerySet[Any]:
        return sorted_by(queryset, sort_keys(view.query, view.sortable_fields))

    def get_schema_operation_parameters(self, view: Any) -> list[dict[str, Any]]:
        return sort_parameters(view.sortable_fields)
