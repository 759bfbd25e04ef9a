"""The OpenAPI schema of the API's operations, beyond what their serializers say.

drf-spectacular generates the schema from the views and serializers. ``ApiAutoSchema``
adds what they cannot say: the club and the path ids, the query parameters each action
reads (its FilterSet's, pages and sorting, under any action name), the paginated body of
a list, and every error status with its body and an example.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, cast

import uritemplate
from django.conf import settings
from drf_spectacular.openapi import AutoSchema
from drf_spectacular.plumbing import get_doc
from drf_spectacular.utils import Direction, OpenApiExample, OpenApiParameter
from rest_framework import exceptions

from loyalty.api.authentication import (
    CLIENT_HEADER_MAX_LENGTH,
    INVALID_TOKEN,
    MALFORMED_HEADER,
    MISSING_HEADER,
)
from loyalty.api.components import enum
from loyalty.api.error_responses import (
    DATABASE_BUSY,
    EMPTY_BODY,
    INTERNAL_ERROR,
    INVALID_HOST,
    INVALID_PARAMETERS,
    NOT_FOUND,
    ErrorSerializer,
    InvalidParametersSerializer,
    LengthRequired,
)
from loyalty.api.fields import MAX_JSON_DEPTH
from loyalty.api.filters import QueryFilterBackend
from loyalty.api.pagination import (
    DIRECTIONS,
    PAGE_PARAMETERS,
    PAGE_QUERY,
    SORT_QUERY,
    ClubPagination,
    paginated_serializer,
    query_parameter,
)
from loyalty.api.permissions import PERMIT_MISSING
from loyalty.api.query import FORMAT, Parameter, accepted_names

if TYPE_CHECKING:
    from loyalty.api.views import ClubScopedViewSet

# The path ids, one name each wherever they appear: what they name, and an example.
PATH_IDS = {
    "members_group_id": ("members group", 6813),
    "member_id": ("member", 1234567),
    "audience_id": ("audience", 4021),
}

ERROR_DESCRIPTIONS = {
    400: "Refused before the operation ran: a Host header the server does not serve, too "
    "many query parameters, or a body that is empty, not JSON, not a JSON object, or nested "
    f"more than {MAX_JSON_DEPTH} levels deep.",
    401: "Missing, invalid or revoked token, or a token of another club (also for an "
    "unknown club slug).",
    403: "The token lacks the operation's permit.",
    404: "Unknown id (or, for staff, unknown club).",
    405: "The operation is never allowed on this object (e.g. a system group).",
    411: "A body sent without Content-Length (chunked): send its length.",
    413: "The body is larger than the server accepts.",
    422: "Invalid parameters: see details.",
    429: "Too many requests for this token: wait Retry-After seconds.",
    470: "X-User-Agent or X-Product-Name header missing (the platform's own status code).",
    471: "X-User-Agent or X-Product-Name header malformed (the platform's own status code).",
    500: "An unexpected error (the body never carries a traceback).",
    503: "The database is busy or unavailable: try again after Retry-After seconds.",
}
# Every operation may answer these; a body adds WITH_BODY, a query 422, a refusal 405.
ALWAYS = (400, 401, 403, 404, 429, 470, 471, 500, 503)
WITH_BODY = (411, 413, 422)
RETRY_AFTER = {
    429: "Seconds until the token may call again.",
    503: "Seconds to wait before trying again.",
}


def camel_case(snake: str) -> str:
    return "".join(part.title() for part in snake.split("_"))


def sort_parameters(resource_key: str, fields: Iterable[str]) -> list[dict[str, Any]]:
    """``sort_by[]``/``sort_directions[]`` of a list of ``resource_key`` sorted by ``fields``."""
    by = enum(f"{camel_case(resource_key)}SortByEnum", fields)
    return [
        query_parameter(
            "sort_by[]",
            {"type": "array", "items": by},
            "Fields to sort by, in order of precedence, then by id.",
        ),
        query_parameter(
            "sort_directions[]",
            {"type": "array", "items": enum("SortDirectionEnum", DIRECTIONS)},
            "The direction of each sort_by[] field, by position; a missing one is asc.",
        ),
    ]


class ApiAutoSchema(AutoSchema):
    """The schema of a ``ClubScopedViewSet``'s operations."""

    @property
    def club_view(self) -> ClubScopedViewSet:
        # Only ClubScopedViewSet uses this schema: the view is one of its subclasses.
        return cast("ClubScopedViewSet", self.view)

    @property
    def taken(self) -> tuple[Parameter, ...] | None:
        """The query parameters the action reads (beside its FilterSet's); None: none."""
        view = self.club_view
        return view.query_parameters.get(view.action or "")

    def get_override_parameters(self) -> list[Any]:
        parameters = [
            OpenApiParameter(
                "loyalty_club_slug",
                str,
                OpenApiParameter.PATH,
                description="The club's slug.",
                examples=[OpenApiExample("A club", value="demo")],
            )
        ]
        for name in uritemplate.variables(self.path):
            if name in PATH_IDS:
                what, example = PATH_IDS[name]
                parameters.append(
                    OpenApiParameter(
                        name,
                        int,
                        OpenApiParameter.PATH,
                        description=f"The {what}'s id.",
                        examples=[OpenApiExample(f"A {what}", value=example)],
                    )
                )
        return [*parameters, *super().get_override_parameters()]

    # drf-spectacular's AutoSchema already drops DRF's (path, method) arguments, and calls this.
    def get_description(self) -> str:  # type: ignore[override]
        # The action's own docstring only: the viewset's describes the code, not the API.
        view = self.club_view
        return get_doc(getattr(view, view.action or "", None))

    def get_request_serializer(self) -> Any:
        return self.club_view.input_serializers.get(self.club_view.action)

    @property
    def resource_key(self) -> str:
        """The key of a paged or sorted action's items (``members``, ``audiences``...)."""
        pagination = self.club_view.pagination_class
        assert pagination is not None
        assert issubclass(pagination, ClubPagination)
        return pagination.resource_key

    def get_response_serializers(self) -> Any:
        view = self.club_view
        if self.taken is not None and PAGE_QUERY[0] in self.taken:
            return paginated_serializer(self.resource_key, view.serializer_class)
        return view.serializer_class

    def get_filter_backends(self) -> list[Any]:
        # The action's FilterSet, whatever the action is called (drf-spectacular's default
        # documents filters of "list" only).
        if self.taken is None or self.club_view.filterset_class is None:
            return []
        return [QueryFilterBackend]

    def _get_pagination_parameters(self) -> list[dict[str, Any]]:
        # Pages and sorting, for every action that reads them.
        taken = self.taken or ()
        parameters = []
        if PAGE_QUERY[0] in taken:
            parameters.extend(PAGE_PARAMETERS)
        if SORT_QUERY[0] in taken:
            fields = self.club_view.sortable_fields
            parameters.extend(sort_parameters(self.resource_key, fields))
        return parameters

    def _get_request_body(self, direction: Direction = "request") -> Any:
        # The base method is not annotated (drf-spectacular), hence the ignores.
        if self.get_request_serializer() is None:
            return super()._get_request_body(direction)  # type: ignore[no-untyped-call]
        method = self.method
        if method == "DELETE":
            # Bulk removal carries its payload in a DELETE body, which the base class skips.
            self.method = "POST"
        try:
            body = super()._get_request_body(direction)  # type: ignore[no-untyped-call]
        finally:
            self.method = method
        # Even where no field is required (PATCH): ``payload`` refuses an empty body.
        body["required"] = True
        return body

    def _get_response_bodies(self, direction: Direction = "response") -> dict[str, Any]:
        responses = super()._get_response_bodies(direction)
        codes = set(ALWAYS)
        if self.has_body:
            codes.update(WITH_BODY)
        if self.taken is not None:
            codes.add(422)  # a parameter it does not take, or a bad value
        if self.club_view.action in self.club_view.not_allowed_actions:
            codes.add(405)
        for code in sorted(codes):
            responses.setdefault(str(code), self._error_response(code, direction))
        return responses

    @property
    def has_body(self) -> bool:
        return self.get_request_serializer() is not None

    def _error_response(self, code: int, direction: Direction) -> dict[str, Any]:
        serializer = InvalidParametersSerializer if code == 422 else ErrorSerializer
        component = self.resolve_serializer(serializer, direction)
        response: dict[str, Any] = {
            "description": ERROR_DESCRIPTIONS[code],
            "content": {
                "application/json": {
                    "schema": component.ref,
                    "examples": {"Refused": {"value": self.error_example(code)}},
                }
            },
        }
        if code in RETRY_AFTER:
            response["headers"] = {
                "Retry-After": {"schema": {"type": "integer"}, "description": RETRY_AFTER[code]}
            }
        return response

    def error_example(self, code: int) -> dict[str, Any]:
        """An error body this operation answers with ``code``, as the API writes it."""
        view = self.club_view
        if code == 422:
            return {"error": INVALID_PARAMETERS, "details": self.invalid_details()}
        messages = {
            400: EMPTY_BODY if self.has_body else INVALID_HOST,
            401: INVALID_TOKEN,
            403: PERMIT_MISSING.format(permit=view.required_permits.get(view.action or "")),
            404: NOT_FOUND,
            405: view.not_allowed_actions.get(view.action or ""),
            411: str(LengthRequired.default_detail),
            413: f"The request body is larger than {settings.DATA_UPLOAD_MAX_MEMORY_SIZE} bytes.",
            429: str(exceptions.Throttled(wait=12).detail),
            470: MISSING_HEADER.format(header="X-Product-Name"),
            471: MALFORMED_HEADER.format(header="X-User-Agent", max=CLIENT_HEADER_MAX_LENGTH),
            500: INTERNAL_ERROR,
            503: DATABASE_BUSY,
        }
        return {"error": messages[code]}

    def invalid_details(self) -> dict[str, Any]:
        """A 422's details: a payload field refused, or a query parameter not taken."""
        serializer = self.get_request_serializer()
        if serializer is not None:
            field = next(iter(serializer().fields))
            return {field: [{"error": "invalid", "options": {}}]}
        view = self.club_view
        filters = view.filterset_class.parameters() if view.filterset_class else []
        accepted = accepted_names([*(self.taken or ()), *filters, FORMAT])
        return {"colour": [{"error": "unknown_parameter", "options": {"accepted": accepted}}]}
