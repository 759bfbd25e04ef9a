"""The members groups endpoints, their members in bulk and as CSV, and the groups of one member."""

from __future__ import annotations

from datetime import timedelta
from functools import partial
from zoneinfo import ZoneInfo

from django.http import Http404, StreamingHttpResponse
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiExample,
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    extend_schema_view,
)
from rest_framework.decorators import action
from rest_framework.generics import get_object_or_404
from rest_framework.request import Request
from rest_framework.response import Response

from groups import selectors, services
from groups.exports import EXPORT_COLUMNS, members_csv_response
from groups.filters import MembersGroupFilterSet, MembershipEventFilterSet
from groups.models import MembersGroup, MembershipEvent
from groups.serializers import (
    GROUP_COLUMNS,
    GROUP_MEMBERSHIP_COLUMNS,
    BulkAddReportSerializer,
    BulkIdentifiersSerializer,
    BulkRemoveReportSerializer,
    ExplainSerializer,
    GroupMembershipSerializer,
    GroupStatsSerializer,
    MembersGroupPayloadSerializer,
    MembersGroupSerializer,
    MembershipEventSerializer,
    group_memberships_json,
    groups_json,
)
from loyalty.api.club_lists import paginated_club_rows
from loyalty.api.filters import QueryFilterBackend
from loyalty.api.pagination import (
    MAX_ID,
    PAGE_QUERY,
    SORT_QUERY,
    PageRequest,
    SortOrder,
    after_id_param,
    keyset_pagination_info,
    paginated_by,
    paginated_rows,
    pagination_info,
    parsed_param,
    sort_keys,
)
from loyalty.api.query import Parameter, boolean, choice, day, moment
from loyalty.api.views import API_SOURCE, ClubScopedViewSet, found
from loyalty.errors import InvalidParameters
from loyalty.permits import (
    GROUPS_ADD_MEMBERS,
    GROUPS_CREATE,
    GROUPS_DESTROY,
    GROUPS_EVENTS,
    GROUPS_LIST,
    GROUPS_REMOVE_MEMBERS,
    GROUPS_SHOW,
    GROUPS_UPDATE,
    MEMBERS_SHOW,
)
from members.filters import MemberFilterSet
from members.models import Member
from members.serializers import MemberSerializer, members_json
from members.views import MEMBER_SORTABLE, MembersPagination

# Days per interval of the stats.
INTERVALS = {"day": 1, "week": 7}
MAX_INTERVALS = 366
GROUP_SORTABLE = ("id", "name", "type", "members_count", "created_at", "updated_at")
GroupsPagination = paginated_by("members_groups")
# A group's members as CSV, for the API docs.
CSV_EXAMPLE = (
    ",".join(EXPORT_COLUMNS) + "\n"
    '17,ann@example.com,4740769126,2025-03-01T09:30:00Z,"{""tier"": ""gold""}"\n'
    "18,,4790000000,2025-03-02T10:00:00Z,{}\n"
)


GROUP_MEMBERS_PARAMETERS = [
    OpenApiParameter(
        "after_id",
        # The ids it pages over run from 1 to MAX_ID; 0 starts the walk.
        {"type": "integer", "minimum": 0, "maximum": MAX_ID},
        description="Key-set walk of a whole group: the members after this id in the sort "
        "order (0 to start, in either direction), at the same cost on every page. Replaces "
        "page_no; the response's pagination_info.next_after_id is the next call's after_id "
        "(null on the last page), and its current_page, next_page and prev_page are null.",
    ),
    OpenApiParameter(
        "at",
        {"type": "string", "format": "date-time"},
        description="The members as they were at this moment (ISO 8601; UTC without an "
        "offset), rebuilt from the group's events; total_count is their number then. "
        "Members deleted since are left out of the pages.",
    ),
]


@extend_schema_view(
    list=extend_schema(operation_id="list_members_groups", summary="List members groups"),
    create=extend_schema(
        operation_id="create_members_group",
        summary="Create a members group",
        description="A manual group, or an automatic one with audience_id or "
        'audience_conditions. "system": true is refused (422); id, automatic, '
        "members_count and unknown keys are ignored.",
    ),
    retrieve=extend_schema(operation_id="get_members_group", summary="Show a members group"),
    update=extend_schema(
        operation_id="update_members_group",
        summary="Update a members group",
        description="System groups: 405, whatever the body. A manual group takes its own "
        "audience_id and audience_conditions echoed back unchanged (a group read and sent back "
        "whole); a change of them is 422.",
    ),
    partial_update=extend_schema(
        operation_id="patch_members_group", summary="Update some fields of a members group"
    ),
    destroy=extend_schema(
        operation_id="delete_members_group",
        summary="Destroy a members group",
        description="Records a leave for each member. System groups, and groups other "
        "groups' conditions use: 405. The audience made for the group goes with it; an "
        "audience a client created stays.",
    ),
)
class MembersGroupViewSet(ClubScopedViewSet):
    queryset = MembersGroup.objects.select_related("audience")
    lookup_url_kwarg = "members_group_id"
    serializer_class = MembersGroupSerializer
    input_serializers = {
        "create": MembersGroupPayloadSerializer,
        "update": MembersGroupPayloadSerializer,
        "partial_update": MembersGroupPayloadSerializer,
        "add_members": BulkIdentifiersSerializer,
        "remove_members": BulkIdentifiersSerializer,
    }
    pagination_class = GroupsPagination
    filter_backends = [QueryFilterBackend, SortOrder]
    filterset_class = MembersGroupFilterSet
    sortable_fields = GROUP_SORTABLE
    query_parameters = {
        "list": (*PAGE_QUERY, *SORT_QUERY),
        "members": (*PAGE_QUERY, *SORT_QUERY, Parameter("after_id"), Parameter("at")),
        "events": (*PAGE_QUERY, *SORT_QUERY),
        "stats": (Parameter("since"), Parameter("until"), Parameter("interval")),
        "members_csv": (Parameter("escape_formulas"),),
    }
    required_permits = {
        "list": GROUPS_LIST,
        "create": GROUPS_CREATE,
        "retrieve": GROUPS_SHOW,
        "update": GROUPS_UPDATE,
        "partial_update": GROUPS_UPDATE,
        "destroy": GROUPS_DESTROY,
        "members": GROUPS_SHOW,
        # The same members as the list above, in another format: the same permit.
        "members_csv": GROUPS_SHOW,
        "add_members": GROUPS_ADD_MEMBERS,
        "remove_members": GROUPS_REMOVE_MEMBERS,
        "explain": GROUPS_SHOW,
        "events": GROUPS_EVENTS,
        "stats": GROUPS_EVENTS,
    }
    not_allowed_actions = {
        "update": services.GroupIsSystem.message,
        "partial_update": services.GroupIsSystem.message,
        "destroy": services.GroupInUse.message,
        "add_members": services.GroupIsAutomatic.message,
        "remove_members": services.GroupIsAutomatic.message,
    }

    def list(self, request: Request, loyalty_club_slug: str) -> Response:
        return paginated_club_rows(self, GROUP_COLUMNS, groups_json)

    def create(self, request: Request, loyalty_club_slug: str) -> Response:
        group = services.create_group(club=self.club, actor=self.actor, **self.payload(request))
        return self.render(group, status=201)

    def retrieve(self, request: Request, loyalty_club_slug: str, members_group_id: str) -> Response:
        row = found(selectors.group_row(self.club.pk, int(members_group_id), GROUP_COLUMNS))
        return Response(groups_json([row])[0])

    def update(self, request: Request, loyalty_club_slug: str, members_group_id: str) -> Response:
        group = self.get_object()
        services.refuse_system(group)  # before the body is read: 405 whatever it holds
        group = services.update_group(group=group, actor=self.actor, **self.payload(request))
        return self.render(group)

    def partial_update(
        self, request: Request, loyalty_club_slug: str, members_group_id: str
    ) -> Response:
        return self.update(request, loyalty_club_slug, members_group_id)

    def destroy(self, request: Request, loyalty_club_slug: str, members_group_id: str) -> Response:
        services.delete_group(group=self.get_object(), source=API_SOURCE, actor=self.actor)
        return Response(status=204)

    @extend_schema(
        operation_id="list_group_members",
        summary="List a group's members",
        description="Sorted by id, or by the sort_by[] fields then id. By id alone, pages "
        "walk the membership index, by page_no or by after_id; by another field, a large "
        "group's pages walk the club's members in that order and a small group's members "
        "are sorted, and after_id cannot be given. total_count is the group's stored "
        "members_count (with at: the number of members then); with member filters (as on "
        "the members list), the number of the "
        "group's members that match them, counted.",
        parameters=GROUP_MEMBERS_PARAMETERS,
    )
    @action(
        detail=True,
        methods=["get"],
        url_path="members",
        serializer_class=MemberSerializer,
        pagination_class=MembersPagination,
        filterset_class=MemberFilterSet,
        sortable_fields=MEMBER_SORTABLE,
    )
    def members(self, request: Request, loyalty_club_slug: str, members_group_id: str) -> Response:
        query = self.query
        at = parsed_param(query, "at", moment)
        group = self.paged_group() if at is None else self.group_or_history()
        page = PageRequest.from_query(query)
        after_id = after_id_param(query)
        keys = sort_keys(query, self.sortable_fields)
        by_fields = any(key.field != "id" for key in keys)
        if by_fields and after_id is not None:
            raise InvalidParameters.field("after_id", "requires_sort_by_id")
        only = (
            MemberFilterSet.apply(query, Member.objects.filter(club=group.club_id), group.club_id)
            if MemberFilterSet.given(query)
            else None
        )
        if by_fields:
            result = selectors.sorted_group_members_page(
                group=group,
                keys=keys,
                per_page=page.per_page,
                offset=page.offset,
                at=at,
                only=only,
            )
        else:
            result = selectors.group_members_page(
                group=group,
                per_page=page.per_page,
                offset=page.offset if after_id is None else 0,
                after_id=after_id,
                descending=any(key.descending for key in keys),
                at=at,
                only=only,
            )
        if only is not None:
            total = selectors.filtered_group_members_count(group=group, only=only, at=at)
        elif at is None:
            total = group.members_count
        else:
            total = selectors.group_members_count_at(group=group, at=at)
        info = (
            pagination_info(total_count=total, page=page)
            if after_id is None
            else keyset_pagination_info(
                total_count=total,
                per_page=page.per_page,
                is_first_page=result.is_first,
                next_after_id=result.next_after_id,
            )
        )
        return Response({"members": members_json(result.members), "pagination_info": info})

    def paged_group(self) -> MembersGroup:
        return found(selectors.paged_group(self.club.pk, int(self.kwargs[self.lookup_url_kwarg])))

    @extend_schema(
        operation_id="add_group_members",
        summary="Add members to a manual group",
        description="Atomic and idempotent. Unknown identifiers are reported in not_found, "
        "malformed ones in invalid; duplicates count once. Over BULK_IDENTIFIERS_MAX "
        "identifiers: 422, nothing changed. Automatic or system group: 405.",
        responses={200: BulkAddReportSerializer},
    )
    @members.mapping.post
    def add_members(
        self, request: Request, loyalty_club_slug: str, members_group_id: str
    ) -> Response:
        group = self.get_object()
        services.refuse_membership_by_hand(group)  # 405 whatever the body holds
        result = services.add_members(
            group=group, source=API_SOURCE, actor=self.actor, **self.payload(request)
        )
        return Response(BulkAddReportSerializer(result).data)

    @extend_schema(
        operation_id="remove_group_members",
        summary="Remove members from a manual group",
        description="The bulk payload goes in the DELETE body. Same rules as adding.",
        responses={200: BulkRemoveReportSerializer},
    )
    @members.mapping.delete
    def remove_members(
        self, request: Request, loyalty_club_slug: str, members_group_id: str
    ) -> Response:
        group = self.get_object()
        services.refuse_membership_by_hand(group)  # 405 whatever the body holds
        result = services.remove_members(
            group=group, source=API_SOURCE, actor=self.actor, **self.payload(request)
        )
        return Response(BulkRemoveReportSerializer(result).data)

    @extend_schema(
        operation_id="export_group_members_csv",
        summary="Download a group's members as CSV",
        description="Every member of the group, in id order, as one CSV file streamed while "
        "it is read (any size; no pages). Columns: " + ", ".join(EXPORT_COLUMNS) + "; "
        "joined_at in UTC (ISO 8601), properties as JSON, an absent email or msisdn empty. "
        "The path names the format: the body is CSV whatever the Accept header says, and "
        f"errors are JSON. Permit: {GROUPS_SHOW}, as for listing the group's members. The "
        "cells are the data as stored; escape_formulas=true puts a ' before any cell that "
        "starts with =, +, -, @, a tab or a carriage return, which spreadsheets would run as "
        "a formula.",
        responses={
            (200, "text/csv"): OpenApiResponse(
                OpenApiTypes.STR,
                description="The CSV file (Content-Disposition: attachment).",
                examples=[
                    OpenApiExample(
                        "Two members",
                        value=CSV_EXAMPLE,
                        media_type="text/csv",
                        response_only=True,
                    )
                ],
            )
        },
        parameters=[
            OpenApiParameter(
                "Content-Disposition",
                str,
                OpenApiParameter.HEADER,
                response=[200],
                description='attachment; filename="members-group-<id>.csv"',
            ),
            OpenApiParameter(
                "escape_formulas",
                bool,
                description="Escape the cells a spreadsheet would run as formulas (OWASP's "
                "' prefix). Default false: the data as stored.",
            ),
        ],
    )
    @action(
        detail=True,
        methods=["get"],
        url_path=r"members\.csv",
        url_name="members-csv",
        filterset_class=None,
    )
    def members_csv(
        self, request: Request, loyalty_club_slug: str, members_group_id: str
    ) -> StreamingHttpResponse:
        escape = parsed_param(self.query, "escape_formulas", boolean) or False
        return members_csv_response(
            self.get_object(), with_body=request.method != "HEAD", escape_formulas=escape
        )

    def group_or_history(self) -> MembersGroup:
        """The group, or for a destroyed one whose events remain, a stand-in with no members:
        who was in a group at a moment stays answerable after it is gone."""
        try:
            group: MembersGroup = self.get_object()
        except Http404:
            pk = self.kwargs[self.lookup_url_kwarg]
            if (
                not pk.isdecimal()
                or not MembershipEvent.objects.filter(
                    club_id=self.club.pk, group_id=int(pk)
                ).exists()
            ):
                raise
            return MembersGroup(pk=int(pk), club=self.club, members_count=0)
        return group

    @extend_schema(
        operation_id="list_group_events",
        summary="List a group's membership events",
        description="Every join and leave of the group, newest first (then by id): the "
        "member, the kind, the source (api, admin, import, rule, system) and the actor. "
        "Events sort by created_at only: sort_by[]=created_at (asc by default) gives the "
        "oldest first.",
    )
    @action(
        detail=True,
        methods=["get"],
        url_path="events",
        pagination_class=paginated_by("events"),
        filter_backends=[QueryFilterBackend],
        filterset_class=MembershipEventFilterSet,
        serializer_class=MembershipEventSerializer,
        sortable_fields=("created_at",),
    )
    def events(self, request: Request, loyalty_club_slug: str, members_group_id: str) -> Response:
        group = self.group_or_history()
        keys = sort_keys(self.query, self.sortable_fields)
        newest_first = keys[0].descending if keys else True
        events = MembershipEvent.objects.filter(club_id=group.club_id, group_id=group.pk)
        order = ("-created_at", "-id") if newest_first else ("created_at", "id")
        return self.paginated(events.order_by(*order))

    @extend_schema(
        operation_id="get_group_stats",
        summary="A group's size, joins and leaves per day or week",
        description="From the membership events, per interval of the club's calendar (a "
        "week runs Monday to Sunday): the size at its start and end, and its joins and "
        "leaves (size_at_end = size_at_start + joins - leaves). since defaults to 29 days "
        "before until, until to today; at most 366 intervals.",
        parameters=[
            OpenApiParameter("since", {"type": "string", "format": "date"}),
            OpenApiParameter("until", {"type": "string", "format": "date"}),
            OpenApiParameter("interval", {"type": "string", "enum": [*INTERVALS]}),
        ],
        responses={200: GroupStatsSerializer},
    )
    @action(
        detail=True,
        methods=["get"],
        url_path="stats",
        filterset_class=None,
    )
    def stats(self, request: Request, loyalty_club_slug: str, members_group_id: str) -> Response:
        group = self.group_or_history()
        query = self.query
        interval = parsed_param(query, "interval", partial(choice, choices=[*INTERVALS])) or "day"
        today = timezone.now().astimezone(ZoneInfo(group.club.timezone)).date()
        until = parsed_param(query, "until", day) or today
        since = parsed_param(query, "since", day) or until - timedelta(days=29)
        if since > until:
            raise InvalidParameters.field("since", "after_until")
        if (until - since).days // INTERVALS[interval] >= MAX_INTERVALS:
            raise InvalidParameters.field("since", "too_many_intervals", max=MAX_INTERVALS)
        stats = selectors.group_stats(group, since=since, until=until, interval=interval)
        body = {"members_group_id": group.pk, "interval": interval, "stats": stats}
        return Response(GroupStatsSerializer(body).data)

    @extend_schema(
        operation_id="explain_group_membership",
        summary="Explain a member's membership",
        description="Whether the member is in the group and whether it satisfies the group's "
        "rule, with every condition node of the rule marked matches true or false for this "
        "member. For a manual group the rule is its own membership. The member must belong "
        "to the club: else 404.",
        responses={200: ExplainSerializer},
    )
    @action(
        detail=True,
        methods=["get"],
        url_path=r"members/(?P<member_id>[0-9]{1,18})/explain",
    )
    def explain(
        self, request: Request, loyalty_club_slug: str, members_group_id: str, member_id: str
    ) -> Response:
        group = self.get_object()
        member = get_object_or_404(Member.objects.filter(club=self.club), pk=member_id)
        return Response(selectors.explain_membership(group=group, member=member))


@extend_schema_view(
    list=extend_schema(operation_id="list_member_groups", summary="List the groups a member is in")
)
class MemberGroupsViewSet(ClubScopedViewSet):
    """``members/{member_id}/members_groups``: filters, sorting and pages as the group list."""

    queryset = MembersGroup.objects.none()  # for the schema: rows come from the selector
    serializer_class = GroupMembershipSerializer
    pagination_class = GroupsPagination
    filter_backends = [QueryFilterBackend, SortOrder]
    filterset_class = MembersGroupFilterSet
    sortable_fields = GROUP_SORTABLE
    query_parameters = {"list": (*PAGE_QUERY, *SORT_QUERY)}
    required_permits = {"list": MEMBERS_SHOW}

    def list(self, request: Request, loyalty_club_slug: str, member_id: str) -> Response:
        member = get_object_or_404(Member.objects.filter(club=self.club), pk=member_id)
        groups = self.filter_queryset(selectors.groups_of_member(member))
        rows = groups.values(*GROUP_MEMBERSHIP_COLUMNS)
        return paginated_rows(self, rows, group_memberships_json)
