"""List mechanics shared by every list endpoint: query parameters, sorting and pagination,
and the schema of a page."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar, Protocol, TypeVar

from django.db.models import F, Model, QuerySet
from django.db.models.expressions import OrderBy
from django.http import QueryDict
from django.utils import timezone
from drf_spectacular.drainage import get_override
from drf_spectacular.utils import OpenApiExample, extend_schema_serializer
from rest_framework import serializers
from rest_framework.filters import BaseFilterBackend
from rest_framework.pagination import BasePagination
from rest_framework.request import Request
from rest_framework.response import Response

from loyalty.api.query import BadValue, Parameter, integer
from loyalty.db import InArray
from loyalty.db_decoding import value_rows
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


class PaginationInfoSerializer(serializers.Serializer[Any]):
    """Where a page is in its list: the total, the page's number and its neighbours, or
    the next after_id of a key-set walk."""

    total_count = serializers.IntegerField()
    per_page = serializers.IntegerField()
    total_pages = serializers.IntegerField(help_text="0 for an empty list.")
    current_page = serializers.IntegerField(
        allow_null=True, help_text="null when walking a group's members with after_id."
    )
    next_page = serializers.IntegerField(allow_null=True)
    prev_page = serializers.IntegerField(allow_null=True)
    is_first_page = serializers.BooleanField()
    is_last_page = serializers.BooleanField()
    is_out_of_range = serializers.BooleanField()
    next_after_id = serializers.IntegerField(
        required=False,
        allow_null=True,
        help_text="Only when walking a group's members with after_id: the after_id of the "
        "next page, null on the last one.",
    )


PAGINATION_INFO_EXAMPLE = {
    "total_count": 1,
    "per_page": 100,
    "total_pages": 1,
    "current_page": 1,
    "next_page": None,
    "prev_page": None,
    "is_first_page": True,
    "is_last_page": True,
    "is_out_of_range": False,
}

PAGE_PARAMETERS = [
    query_parameter(
        "page_no",
        {"type": "integer", "minimum": 1, "maximum": PAGE_NO_MAX},
        "Page number, from 1 (the first page when absent). Not with after_id.",
    ),
    query_parameter(
        "per_page",
        {"type": "integer", "minimum": 1, "maximum": PER_PAGE_MAX, "default": PER_PAGE_DEFAULT},
        f"Items per page, at most {PER_PAGE_MAX} (more: 422).",
    ),
]


_PAGES: dict[tuple[str, type[Any]], type[serializers.Serializer[Any]]] = {}


def paginated_serializer(
    resource_key: str, item: type[serializers.BaseSerializer[Any]]
) -> type[serializers.Serializer[Any]]:
    """The schema of a page of ``item`` under ``resource_key``, with ``pagination_info``;
    its example is the item's (``extend_schema_serializer(examples=...)``) in a page.

    One class per page shape: drf-spectacular takes two classes of one name for a conflict.
    """
    if (resource_key, item) not in _PAGES:
        _PAGES[resource_key, item] = _page_serializer(resource_key, item)
    return _PAGES[resource_key, item]


def _page_serializer(
    resource_key: str, item: type[serializers.BaseSerializer[Any]]
) -> type[serializers.Serializer[Any]]:
    name = item.__name__.removesuffix("Serializer")
    page = type(
        f"Paginated{name}ListSerializer",
        (serializers.Serializer,),
        {
            "__module__": item.__module__,
            "__doc__": f"A page of {resource_key}.",
            resource_key: item(many=True),
            "pagination_info": PaginationInfoSerializer(),
        },
    )
    examples = [
        OpenApiExample(
            example.name,
            value={resource_key: [example.value], "pagination_info": PAGINATION_INFO_EXAMPLE},
            response_only=True,
        )
        for example in get_override(item, "examples", [])
        if not example.request_only
    ]
    # Not a list to drf-spectacular: the page is the whole body, example included.
    return extend_schema_serializer(many=False, examples=examples)(page)


_M = TypeVar("_M", bound=Model)
_R = TypeVar("_R")
_V = TypeVar("_V")


class ClubPagination(BasePagination):
    """``page_no``/``per_page`` pages under ``resource_key``, with the SPEC's pagination_info.

    The first page is read in one statement. A later page is read in two steps, the ids
    first and then their rows, so that a deep page skips over index entries rather than
    whole rows (PERFORMANCE.md, deferred join). A page that is not full ends the list, so
    its total needs no count.
    """

    resource_key: ClassVar[str]

    def paginate_queryset(
        self, queryset: QuerySet[_M, _R] | Sequence[_R], request: Request, view: Any = None
    ) -> list[_R]:
        assert isinstance(queryset, QuerySet)  # the views page querysets only
        # Sorted by ``sort_by[]``: read in that order (see ``page_in_order``).
        sorted_list = SortOrder in view.filter_backends
        keys = sort_keys(view.query, view.sortable_fields) if sorted_list else None
        return self.paginate(_Built(queryset, keys), view)

    def paginate(self, statements: PageStatements, view: Any) -> list[Any]:
        """The page the view's query asks for, read by ``statements``."""
        page = PageRequest.from_query(view.query)
        if page.offset == 0:
            rows = statements.first(page.per_page)
        else:
            ids = statements.ids(page.offset, page.per_page)
            rows = statements.rows(ids) if ids else []
        if len(rows) < page.per_page and (rows or page.offset == 0):
            total = page.offset + len(rows)
        else:
            # A view that knows the total (e.g. from a stored count) sets ``total_count``:
            # a number, or a function called only when the page does not tell it.
            known = getattr(view, "total_count", None)
            total = statements.count() if known is None else known() if callable(known) else known
        self.info = pagination_info(total_count=total, page=page)
        return rows

    def get_paginated_response(self, data: Any) -> Response:
        return Response({self.resource_key: data, "pagination_info": self.info})


def paginated_rows(
    view: Any,
    rows: QuerySet[Any, dict[str, Any]],
    represent: Callable[[list[dict[str, Any]]], list[dict[str, Any]]],
) -> Response:
    """The view's page of ``rows`` (a ``values()`` queryset, filtered and sorted), each row
    written by ``represent``: the lists build their JSON from rows, not model instances."""
    paginator = view.paginator
    assert isinstance(paginator, ClubPagination)  # every list view pages with one
    page = paginator.paginate_queryset(rows, view.request, view)
    return paginator.get_paginated_response(represent(page))


class PageStatements(Protocol):
    """What reads a page: the first page's rows, a later page's ids and then their rows,
    and the count of the list."""

    def first(self, limit: int) -> list[Any]: ...

    def ids(self, offset: int, limit: int) -> list[int]: ...

    def rows(self, ids: list[int]) -> list[Any]: ...

    def count(self) -> int: ...


@dataclass(frozen=True)
class _Built:
    """The statements of a page of ``queryset``, built from it."""

    queryset: QuerySet[Any]
    keys: Sequence[SortKey] | None

    def first(self, limit: int) -> list[Any]:
        return _page(self.queryset, self.keys, offset=0, limit=limit)

    def ids(self, offset: int, limit: int) -> list[int]:
        ids: list[int] = _page(self.queryset.values_list("pk", flat=True), self.keys, offset, limit)
        return ids

    def rows(self, ids: list[int]) -> list[Any]:
        return value_rows(self.queryset.filter(InArray(F("pk"), ids)))

    def count(self) -> int:
        return self.queryset.count()


def _page(
    queryset: QuerySet[Any], keys: Sequence[SortKey] | None, offset: int, limit: int
) -> list[Any]:
    if keys is None:
        return value_rows(queryset[offset : offset + limit])
    return page_in_order(queryset, keys, offset=offset, limit=limit)


def datetime_text() -> Callable[[datetime | None], str | None]:
    """A function writing datetimes as DRF's ``DateTimeField`` does (ISO 8601 in the current
    time zone, "Z" for UTC), the time zone looked up once: once per response, not per row.
    """
    zone = timezone.get_current_timezone()
    # A value read in UTC (PostgreSQL's, see loyalty.db_decoding) written in UTC needs no
    # conversion: a page writes two hundred of them.
    utc = zone.utcoffset(None) == timedelta(0)

    def text(value: datetime | None) -> str | None:
        if value is None:
            return None
        if utc and value.tzinfo is UTC:
            return value.isoformat()[:-6] + "Z"
        if value.tzinfo is None:
            return str(DATETIME.to_representation(value))
        iso = value.astimezone(zone).isoformat()
        return iso[:-6] + "Z" if iso.endswith("+00:00") else iso

    return text


DATETIME = serializers.DateTimeField()


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


def order_by(model: type[Model], key: SortKey) -> OrderBy:
    name = "pk" if key.field == "id" else key.field
    # Nulls last on both databases, so that a page is the same on SQLite and PostgreSQL.
    nulls_last = True if name != "pk" and model._meta.get_field(name).null else None
    field = F(name)
    return field.desc(nulls_last=nulls_last) if key.descending else field.asc(nulls_last=nulls_last)


def with_id(keys: Sequence[SortKey]) -> list[SortKey]:
    """``keys``, then id unless they name it: a total order, so that pages never overlap."""
    if any(key.field == "id" for key in keys):
        return list(keys)
    return [*keys, SortKey("id", descending=False)]


def by_club(keys: Sequence[SortKey]) -> OrderBy:
    """The club, first, as every index of a club's rows starts with it (one club per list),
    in the first key's direction: a list reads its club as ``club_id = ANY(...)``
    (``ClubScopedViewSet.get_queryset``), so the club stays in the order, and an index
    read backwards for a descending key gives the club descending too."""
    club = F("club_id")
    return club.desc() if keys and keys[0].descending else club.asc()


def sorted_by(queryset: QuerySet[Any], keys: Sequence[SortKey]) -> QuerySet[Any]:
    """A club's rows in the order of ``keys``, then by id."""
    keys = with_id(keys)
    return queryset.order_by(by_club(keys), *(order_by(queryset.model, key) for key in keys))


def page_in_order(
    queryset: QuerySet[_M, _R], keys: Sequence[SortKey], *, offset: int, limit: int
) -> list[_R]:
    """Rows ``offset`` to ``offset + limit`` of ``queryset`` in the order of ``sorted_by``.

    When the first key's field can be empty (empty values sort last either way), the rows
    with a value are read first, then those without. The first part is ordered by the field
    without ``NULLS LAST``, which it does not need having left the empty values out, so that
    the club's index on the field (a unique constraint on the rows that have one) serves it
    in both directions: read backwards, an index gives the empty values first, and
    PostgreSQL would sort the club's rows instead of walking it.
    """
    keys = with_id(keys)
    first = keys[0]
    model = queryset.model
    if first.field == "id" or not model._meta.get_field(first.field).null:
        return value_rows(sorted_by(queryset, keys)[offset : offset + limit])
    field = F(first.field)
    walk = field.desc() if first.descending else field.asc()
    valued = queryset.filter(**{f"{first.field}__isnull": False}).order_by(
        by_club(keys), walk, *(order_by(model, key) for key in keys[1:])
    )
    page = value_rows(valued[offset : offset + limit])
    if len(page) == limit:
        return page
    # Every row with a value is before this page's end: the rest are rows without one.
    valued_before = offset + len(page) if page or offset == 0 else valued.count()
    skip = offset + len(page) - valued_before
    empty = sorted_by(queryset.filter(**{f"{first.field}__isnull": True}), keys[1:])
    return page + value_rows(empty[skip : skip + limit - len(page)])


class SortOrder(BaseFilterBackend):
    """Order a list by the view's ``sortable_fields`` named in ``sort_by[]``, then by id."""

    def filter_queryset(
        self, request: Request, queryset: QuerySet[Any], view: Any
    ) -> QuerySet[Any]:
        return sorted_by(queryset, sort_keys(view.query, view.sortable_fields))
