"""The members endpoints: list, create, show, update and destroy a club's members."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework.generics import get_object_or_404
from rest_framework.request import Request
from rest_framework.response import Response

from loyalty.api.club_lists import paginated_club_rows
from loyalty.api.filters import QueryFilterBackend
from loyalty.api.pagination import (
    PAGE_QUERY,
    SORT_QUERY,
    SortOrder,
    paginated_by,
)
from loyalty.api.views import API_SOURCE, ClubScopedViewSet
from loyalty.permits import (
    MEMBERS_CREATE,
    MEMBERS_DESTROY,
    MEMBERS_LIST,
    MEMBERS_SHOW,
    MEMBERS_UPDATE,
)
from members import selectors, services
from members.filters import MemberFilterSet
from members.models import Member
from members.serializers import MemberPayloadSerializer, MemberSerializer, members_json

MembersPagination = paginated_by("members")
# The fields a list of members sorts by (``sort_by[]``): the club's, and a group's.
MEMBER_SORTABLE = ("id", "email", "msisdn", "created_at", "updated_at")


@extend_schema_view(
    list=extend_schema(operation_id="list_members", summary="List members"),
    create=extend_schema(operation_id="create_member", summary="Create a member"),
    retrieve=extend_schema(operation_id="get_member", summary="Show a member"),
    update=extend_schema(
        operation_id="replace_member",
        summary="Replace a member",
        description="Every writable field is replaced: one not sent goes back to its default "
        "(no email or msisdn, empty properties, consents and arrays, the default statuses); "
        "email or msisdn must remain.",
    ),
    partial_update=extend_schema(
        operation_id="patch_member",
        summary="Update some fields of a member",
        description="Only the fields sent change. properties and consents are merged into "
        "the stored ones by JSON Merge Patch (RFC 7396): a key sent is set, a null removes "
        "it, the others stay.",
    ),
    destroy=extend_schema(operation_id="delete_member", summary="Destroy a member"),
)
class MemberViewSet(ClubScopedViewSet):
    queryset = Member.objects.all()
    lookup_url_kwarg = "member_id"
    serializer_class = MemberSerializer
    input_serializers = {
        "create": MemberPayloadSerializer,
        "update": MemberPayloadSerializer,
        "partial_update": MemberPayloadSerializer,
    }
    pagination_class = MembersPagination
    filter_backends = [QueryFilterBackend, SortOrder]
    filterset_class = MemberFilterSet
    sortable_fields = MEMBER_SORTABLE
    query_parameters = {"list": (*PAGE_QUERY, *SORT_QUERY)}
    # The list's total when known without counting the matching rows (ClubPagination).
    total_count: Callable[[], int] | None = None
    required_permits = {
        "list": MEMBERS_LIST,
        "create": MEMBERS_CREATE,
        "retrieve": MEMBERS_SHOW,
        "update": MEMBERS_UPDATE,
        "partial_update": MEMBERS_UPDATE,
        "destroy": MEMBERS_DESTROY,
    }

    def list(self, request: Request, loyalty_club_slug: str) -> Response:
        # Counted only when the page does not tell the total (a full page).
        if not MemberFilterSet.given(self.query):
            # Every member of the club: the stored count is exact and needs no count(*).
            self.total_count = partial(selectors.stored_members_count, self.club)
        elif (group_ids := MemberFilterSet.groups_alone(self.query)) is not None:
            self.total_count = partial(selectors.members_in_groups_count, self.club, group_ids)
        return paginated_club_rows(self, selectors.MEMBER_COLUMNS, members_json)

    def create(self, request: Request, loyalty_club_slug: str) -> Response:
        member = services.create_member(
            club=self.club, source=API_SOURCE, actor=self.actor, **self.payload(request)
        )
        return self.render(member, status=201)

    def retrieve(self, request: Request, loyalty_club_slug: str, member_id: str) -> Response:
        rows = self.get_queryset().values(*selectors.MEMBER_COLUMNS)
        return Response(members_json([get_object_or_404(rows, pk=member_id)])[0])

    def update(self, request: Request, loyalty_club_slug: str, member_id: str) -> Response:
        member = services.replace_member(
            member=self.get_object(), source=API_SOURCE, actor=self.actor, **self.payload(request)
        )
        return self.render(member)

    def partial_update(self, request: Request, loyalty_club_slug: str, member_id: str) -> Response:
        member = services.patch_member(
            member=self.get_object(), source=API_SOURCE, actor=self.actor, **self.payload(request)
        )
        return self.render(member)

    def destroy(self, request: Request, loyalty_club_slug: str, member_id: str) -> Response:
        services.delete_member(member=self.get_object(), source=API_SOURCE, actor=self.actor)
        return Response(status=204)
