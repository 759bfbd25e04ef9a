"""The base of every API viewset: club scope, query and payload parsing, rendering."""

from __future__ import annotations

from collections.abc import Mapping
from functools import partial
from typing import IO, Any, ClassVar, TypeVar

from django.db.models import F, Model, QuerySet
from django.http import Http404, HttpRequest, HttpResponseBase, QueryDict
from rest_framework import exceptions, serializers
from rest_framework.generics import get_object_or_404
from rest_framework.metadata import SimpleMetadata
from rest_framework.parsers import JSONParser
from rest_framework.request import Request, clone_request
from rest_framework.response import Response
from rest_framework.viewsets import GenericViewSet

from loyalty.api.authentication import ClubAccess
from loyalty.api.error_responses import EMPTY_BODY, LengthRequired, validation_details
from loyalty.api.fields import MAX_JSON_DEPTH, deeper_than
from loyalty.api.filters import QueryFilterSet
from loyalty.api.openapi import ApiAutoSchema
from loyalty.api.query import FORMAT, Parameter, read_query
from loyalty.db import InArray, in_retried_transaction
from loyalty.errors import InvalidParameters
from loyalty.models import Club

# The membership-event source of API writes (groups.models.Source.API; loyalty sits below
# groups and cannot import it).
API_SOURCE = "api"

TOO_DEEP = f"The body is nested too deeply: at most {MAX_JSON_DEPTH} levels of objects and arrays."
# Methods whose handler runs in one transaction, retried on a deadlock (loyalty.db).
WRITING_METHODS = ("post", "put", "patch", "delete")


class JSONObjectParser(JSONParser):
    """JSON bodies, each a JSON object (every payload of this API is one) at most
    ``MAX_JSON_DEPTH`` levels deep."""

    def parse(
        self,
        stream: IO[Any],
        media_type: str | None = None,
        parser_context: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        try:
            data = super().parse(stream, media_type, parser_context)
        except RecursionError:
            # The decoder recurses once per level: thousands of "[" exhaust the stack first.
            raise exceptions.ParseError(TOO_DEEP) from None
        if not isinstance(data, dict):
            raise exceptions.ParseError("The body must be a JSON object.")
        if deeper_than(data):
            raise exceptions.ParseError(TOO_DEEP)
        return data


class ApiMetadata(SimpleMetadata):
    """OPTIONS that never looks the object up, so its answer does not tell whether an id
    exists: objects have no permissions of their own here, only the actions' permits."""

    def determine_actions(self, request: Request, view: Any) -> dict[str, Any]:
        actions: dict[str, Any] = {}
        for method in {"PUT", "POST"} & set(view.allowed_methods):
            # The view describes the method's input serializer while it sees that method.
            view.request = clone_request(request, method)
            try:
                view.check_permissions(view.request)
                actions[method] = self.get_serializer_info(view.get_serializer())
            except exceptions.APIException:
                pass
            finally:
                view.request = request
        return actions


class ClubScopedViewSet(GenericViewSet[Any]):
    """A viewset under ``/v3/{loyalty_club_slug}/``, for the callers let into that club.

    Subclasses declare ``required_permits`` per action, ``serializer_class`` for output and
    ``input_serializers`` per writing action (the shapes differ); ``not_allowed_actions``
    maps the actions a DomainError may refuse with 405 to a refusal's message, for the
    schema.

    ``query_parameters`` names the actions that read the query string, with the parameters
    each takes beside its FilterSet's (``filterset_class``): any other is 422, and the
    action reads ``self.query`` (``loyalty.api.query.read_query``). The other actions (show,
    create...) ignore the query string.
    """

    lookup_value_regex = "[0-9]{1,18}"  # ids beyond a bigint cannot exist: plain 404
    parser_classes = [JSONObjectParser]
    metadata_class = ApiMetadata
    schema = ApiAutoSchema()
    # Every subclass sets both: the schema, ``render`` and ``paginated`` rely on them.
    queryset: QuerySet[Any]
    serializer_class: type[serializers.BaseSerializer[Any]]
    required_permits: ClassVar[dict[str, str]] = {}
    input_serializers: ClassVar[dict[str, type[serializers.Serializer[Any]]]] = {}
    not_allowed_actions: ClassVar[dict[str, str]] = {}
    # The fields ``sort_by[]`` takes, where the action sorts (SORT_QUERY).
    sortable_fields: tuple[str, ...] = ()
    query_parameters: ClassVar[dict[str, tuple[Parameter, ...]]] = {}
    filterset_class: type[QueryFilterSet] | None = None
    query: QueryDict

    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        # A write is one transaction, run again if PostgreSQL aborts it to break a deadlock:
        # the handler has sent nothing yet, and its parsed body is kept on the request.
        method = request.method.lower() if request.method else ""
        handler = getattr(self, method, None)
        if method in WRITING_METHODS and handler is not None:
            setattr(self, method, partial(_retried, handler))
        return super().dispatch(request, *args, **kwargs)

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        super().initial(request, *args, **kwargs)
        # Django reads only Content-Length bytes: a chunked body would pass for an empty one.
        if "chunked" in request.META.get("HTTP_TRANSFER_ENCODING", "").lower():
            raise LengthRequired()
        self.query = self.read_query(request)

    def read_query(self, request: Request) -> QueryDict:
        """The action's query parameters, or 422 for one it does not take."""
        taken = self.query_parameters.get(self.action or "")
        if taken is None:
            return QueryDict()
        filters = self.filterset_class.parameters() if self.filterset_class else []
        return read_query(request.query_params, [*taken, *filters, FORMAT])

    @property
    def access(self) -> ClubAccess:
        access = self.request.auth
        assert isinstance(access, ClubAccess)  # guaranteed by HasClubPermit
        return access

    @property
    def club(self) -> Club:
        return self.access.club

    @property
    def actor(self) -> str:
        return self.access.actor

    def get_queryset(self) -> QuerySet[Any]:
        return self.club_queryset(self.club.pk)

    @classmethod
    def club_queryset(cls, club_id: int) -> QuerySet[Any]:
        """The view's rows of club ``club_id``.

        "club_id = ANY(array)", not "= 15": with an equality the planner drops the club from
        a list's order (club, then its sort keys; SortOrder) and walks the primary key past
        every other club's rows (seconds on a big table) instead of the club's own index.
        """
        return cls.queryset.all().filter(InArray(F("club_id"), [club_id]))

    def get_object(self) -> Any:
        # Unlike DRF's, without the list's filters: a query string never hides an object.
        pk = self.kwargs[self.lookup_url_kwarg or self.lookup_field]
        instance = get_object_or_404(self.get_queryset(), pk=pk)
        self.check_object_permissions(self.request, instance)
        return instance

    def get_serializer_class(self) -> type[serializers.BaseSerializer[Any]]:
        # OPTIONS describes writes with this: give it the input shape.
        action: str | None = self.action
        if action == "metadata":  # OPTIONS asks once per method, on a request cloned to it
            method = self.request.method
            assert method is not None  # a request always has one
            action = self.action_map.get(method.lower())
        return self.input_serializers.get(action or "", self.serializer_class)

    def payload(self, request: Request) -> dict[str, Any]:
        """The action's input serializer's validated data, or a 422 with a details tree.

        An empty body is a 400, like any other body that is not a JSON object.
        """
        if request.stream is None:
            # DRF reads an empty body as {} without calling the parser.
            raise exceptions.ParseError(EMPTY_BODY)
        serializer = self.input_serializers[self.action](
            data=request.data,
            context=self.get_serializer_context(),
            partial=self.action == "partial_update",
        )
        if not serializer.is_valid():
            raise InvalidParameters(details=validation_details(serializer.errors, serializer))
        return dict(serializer.validated_data)

    def render(self, instance: Model, status: int = 200) -> Response:
        return Response(self.serializer_class(instance).data, status=status)

    def paginated(self, queryset: QuerySet[Any]) -> Response:
        page = self.paginate_queryset(self.filter_queryset(queryset))
        return self.get_paginated_response(self.serializer_class(page, many=True).data)


def _retried(handler: Any, request: Request, *args: Any, **kwargs: Any) -> Any:
    return in_retried_transaction(partial(handler, request, *args, **kwargs))


T = TypeVar("T")


def found(value: T | None) -> T:
    """``value``, or the 404 of a lookup that found nothing."""
    if value is None:
        raise Http404
    return value
