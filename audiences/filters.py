"""Query-string filters of the audiences list."""

from __future__ import annotations

from loyalty.api.filters import IdsFilter, QueryFilter, QueryFilterSet, SearchFilter


class AudienceFilterSet(QueryFilterSet):
    """Ids, name and a search term, as the other lists take them."""

    ids = IdsFilter("pk", help_text="Only these audience ids.")
    name = QueryFilter(help_text='Name equal to this (case-sensitive; "" for no name).')
    search = SearchFilter(
        "name", help_text="Name contains this, whatever the case (every alphabet)."
    )
