"""The lists of a club's whole rows (no filter given), their statements compiled once.

Django builds and compiles a queryset's SQL on every request; for an unfiltered list that
is the same SQL each time but for the club (and the page's offset and size, which Django
writes into the text): ``CompiledRows`` compiles it once per shape and binds the club.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from django.db.models import Count, F, QuerySet
from rest_framework.response import Response

from loyalty.api.pagination import (
    ClubPagination,
    SortKey,
    paginated_rows,
    sort_keys,
    sorted_by,
    with_id,
)
from loyalty.db import InArray
from loyalty.db_decoding import CompiledRows


def paginated_club_rows(
    view: Any,
    columns: tuple[str, ...],
    represent: Callable[[list[dict[str, Any]]], list[dict[str, Any]]],
) -> Response:
    """The view's page of its club's rows (``club_queryset``, then its filters and
    ``sort_by[]``), ``columns`` of each (``values()`` names), written by ``represent``.

    Unfiltered, and sorted by keys one statement reads (``page_in_order``), the page's
    statements are compiled once per shape (``_ClubList``): the ORM built and compiled
    them on every request, a third of an unfiltered list's CPU.
    """
    filters = view.filterset_class
    if filters is None or not filters.given(view.query):
        keys = with_id(sort_keys(view.query, view.sortable_fields))
        field = keys[0].field
        if field == "id" or not view.queryset.model._meta.get_field(field).null:
            paginator = view.paginator
            assert isinstance(paginator, ClubPagination)  # every list view pages with one
            statements = _ClubList(type(view), columns, tuple(keys), view.club.pk)
            return paginator.get_paginated_response(represent(paginator.paginate(statements, view)))
    rows = view.filter_queryset(view.get_queryset()).values(*columns)
    return paginated_rows(view, rows, represent)


@dataclass(frozen=True)
class _ClubList:
    """The statements of a page of a club's whole list in ``view``, sorted by ``keys``
    (which one statement reads), compiled once per shape (``_club_list``)."""

    view: Any  # the view's class
    columns: tuple[str, ...]
    keys: tuple[SortKey, ...]
    club_id: int

    def first(self, limit: int) -> list[Any]:
        return self._compiled("first", 0, limit)(self.club_id)

    def ids(self, offset: int, limit: int) -> list[int]:
        return [row["pk"] for row in self._compiled("ids", offset, limit)(self.club_id)]

    def rows(self, ids: list[int]) -> list[Any]:
        return self._compiled("rows", 0, 0)(self.club_id, ids)

    def count(self) -> int:
        rows = self._compiled("count", 0, 0)(self.club_id)
        return int(rows[0]["count"]) if rows else 0

    def _compiled(self, kind: str, offset: int, limit: int) -> CompiledRows:
        return _club_list(self.view, self.columns, self.keys, kind, offset, limit)


@lru_cache(maxsize=512)
def _club_list(
    view: Any,
    columns: tuple[str, ...],
    keys: tuple[SortKey, ...],
    kind: str,
    offset: int,
    limit: int,
) -> CompiledRows:
    """One statement of ``_ClubList``, the same as ``_Built``'s for the view's queryset."""

    def listed(club_id: int) -> QuerySet[Any]:
        rows: QuerySet[Any] = sorted_by(view.club_queryset(club_id), keys)
        return rows

    def build(club_id: int, ids: list[int] | None = None) -> QuerySet[Any]:
        rows = listed(club_id)
        if kind == "first":
            return rows.values(*columns)[:limit]
        if kind == "ids":
            return rows.values("pk")[offset : offset + limit]
        if kind == "rows":
            return rows.values(*columns).filter(InArray(F("pk"), ids or []))
        # One row per club: the club's count, or no row at all when it has none.
        counted: QuerySet[Any] = rows.order_by().values("club_id").annotate(count=Count("pk"))
        return counted

    return CompiledRows(view.queryset.model, 2 if kind == "rows" else 1, build, arrays=(1,))
