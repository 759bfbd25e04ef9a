"""Query-string filters of the members lists (a club's, a group's)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from django.db.models import Model, QuerySet, TextField
from django.db.models.fields.json import KeyTextTransform
from django.db.models.functions import Cast
from django.http import QueryDict

from loyalty.api.filters import (
    IdsFilter,
    KeyedFilter,
    QueryFilter,
    QueryFilterSet,
    SearchFilter,
    positive_integer,
)
from loyalty.api.query import BadValue
from members import selectors
from members.normalize import InvalidIdentifier, normalize_email, normalize_msisdn

_M = TypeVar("_M", bound=Model)
_R = TypeVar("_R")


def normalized(normalize: Callable[[object], str]) -> Callable[[str], str]:
    """A query value in the form members are stored in (emails lower-case, msisdns digits)."""

    def parse(raw: str) -> str:
        try:
            return normalize(raw)
        except InvalidIdentifier:
            raise BadValue("invalid", value=raw) from None

    return parse


class MemberFilterSet(QueryFilterSet):
    """Ids, email, msisdn, properties, groups and a search term."""

    ids = IdsFilter("pk", help_text="Only these member ids.")
    email = QueryFilter(
        parse=normalized(normalize_email),
        help_text="Equal to this email (normalised: trimmed, lower case).",
    )
    msisdn = QueryFilter(
        parse=normalized(normalize_msisdn),
        help_text="Equal to this phone number (normalised: +47 407 69 126 -> 4740769126).",
    )
    properties = KeyedFilter(
        method="filter_properties",
        help_text="properties[<key>]=<value>: the property equals the value, e.g. "
        "properties[gender]=female; properties[<key>][]=a&properties[<key>][]=b: it equals "
        "any of them. The stored JSON value is compared as text: 42 matches the number 42 and "
        'the string "42"; booleans read as true/false on PostgreSQL.',
    )
    members_group_ids = IdsFilter(
        method="filter_groups", help_text="Members of any of these groups."
    )
    search = SearchFilter(
        "email",
        "msisdn",
        KeyTextTransform("first_name", "properties"),
        KeyTextTransform("last_name", "properties"),
        help_text="Email, msisdn, first_name or last_name contains this, whatever the case "
        "(every alphabet).",
    )

    @classmethod
    def groups_alone(cls, data: QueryDict) -> list[int] | None:
        """The ids ``members_group_ids`` names when it is the only filter ``data`` gives
        (and they are valid; the filter itself refuses them otherwise), else None."""
        names = {p.name for p in cls.parameters()}
        if ({key.partition("[")[0] for key in data} & names) != {"members_group_ids"}:
            return None
        try:
            return [positive_integer(value) for value in data.getlist("members_group_ids")]
        except BadValue:
            return None

    def filter_properties(
        self, queryset: QuerySet[_M, _R], name: str, value: dict[str, list[str]]
    ) -> QuerySet[_M, _R]:
        """Each ``properties[key]`` equals one of its values, compared as text."""
        for index, (key, values) in enumerate(value.items()):
            alias = f"property_{index}"
            queryset = queryset.alias(
                **{alias: Cast(KeyTextTransform(key, "properties"), TextField())}
            ).filter(**{f"{alias}__in": values})
        return queryset

    def filter_groups(
        self, queryset: QuerySet[_M, _R], name: str, value: list[int]
    ) -> QuerySet[_M, _R]:
        return queryset.filter(selectors.in_any_group(self.club_id, value))
