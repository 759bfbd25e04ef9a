"""The audiences endpoints: saved rules over a club's members, and a preview of a rule."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from audiences import selectors, services
from audiences.filters import AudienceFilterSet
from audiences.models import Audience
from audiences.serializers import (
    AudiencePayloadSerializer,
    AudienceSerializer,
    PreviewPayloadSerializer,
    PreviewSerializer,
)
from loyalty.api.filters import QueryFilterBackend
from loyalty.api.pagination import PAGE_QUERY, SORT_QUERY, SortOrder, paginated_by
from loyalty.api.views import ClubScopedViewSet
from loyalty.permits import (
    AUDIENCES_CREATE,
    AUDIENCES_DESTROY,
    AUDIENCES_LIST,
    AUDIENCES_PREVIEW,
    AUDIENCES_SHOW,
    AUDIENCES_UPDATE,
)


@extend_schema_view(
    list=extend_schema(operation_id="list_audiences", summary="List audiences"),
    create=extend_schema(operation_id="create_audience", summary="Create an audience"),
    retrieve=extend_schema(operation_id="get_audience", summary="Show an audience"),
    update=extend_schema(
        operation_id="update_audience",
        summary="Update an audience",
        description="The conditions of a manual or system group's own audience: 405.",
    ),
    partial_update=extend_schema(
        operation_id="patch_audience", summary="Update some fields of an audience"
    ),
    destroy=extend_schema(
        operation_id="delete_audience",
        summary="Destroy an audience",
        description="An audience used by a group: 405.",
    ),
)
class AudienceViewSet(ClubScopedViewSet):
    queryset = Audience.objects.all()
    serializer_class = AudienceSerializer
    input_serializers = {
        "create": AudiencePayloadSerializer,
        "update": AudiencePayloadSerializer,
        "partial_update": AudiencePayloadSerializer,
        "preview": PreviewPayloadSerializer,
    }
    pagination_class = paginated_by("audiences")
    filter_backends = [QueryFilterBackend, SortOrder]
    filterset_class = AudienceFilterSet
    sortable_fields = ("id", "name", "created_at", "updated_at")
    query_parameters = {"list": (*PAGE_QUERY, *SORT_QUERY)}
    required_permits = {
        "list": AUDIENCES_LIST,
        "create": AUDIENCES_CREATE,
        "retrieve": AUDIENCES_SHOW,
        "update": AUDIENCES_UPDATE,
        "partial_update": AUDIENCES_UPDATE,
        "destroy": AUDIENCES_DESTROY,
        "preview": AUDIENCES_PREVIEW,
    }
    lookup_url_kwarg = "audience_id"
    not_allowed_actions = {
        "update": services.AudienceOwnedByGroup.message,
        "partial_update": services.AudienceOwnedByGroup.message,
        "destroy": services.AudienceInUse.message,
    }

    def list(self, request: Request, loyalty_club_slug: str) -> Response:
        return self.paginated(self.get_queryset())

    def create(self, request: Request, loyalty_club_slug: str) -> Response:
        audience = services.create_audience(club=self.club, **self.payload(request))
        return self.render(audience, status=201)

    def retrieve(self, request: Request, loyalty_club_slug: str, audience_id: str) -> Response:
        return self.render(self.get_object())

    def update(self, request: Request, loyalty_club_slug: str, audience_id: str) -> Response:
        audience = services.update_audience(audience=self.get_object(), **self.payload(request))
        return self.render(audience)

    def partial_update(
        self, request: Request, loyalty_club_slug: str, audience_id: str
    ) -> Response:
        return self.update(request, loyalty_club_slug, audience_id)

    def destroy(self, request: Request, loyalty_club_slug: str, audience_id: str) -> Response:
        services.delete_audience(audience=self.get_object())
        return Response(status=204)

    @extend_schema(
        operation_id="preview_audience",
        summary="Preview conditions",
        description="The number of the club's members matching the conditions and the ids "
        "of the first 100, ascending; nothing is saved. With members_group_id, also the "
        "impact of making the conditions that group's rule: how many would join and leave, "
        "with the first ids of each. Conditions the grammar refuses, naming a group of "
        "another club (or none), or making a cycle as the rule of members_group_id: 422 "
        "with details keyed by their index.",
        responses={200: PreviewSerializer},
    )
    @action(detail=False, methods=["post"])
    def preview(self, request: Request, loyalty_club_slug: str) -> Response:
        result = selectors.preview(club=self.club, **self.payload(request))
        return Response(PreviewSerializer(result).data)
