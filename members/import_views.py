"""The member imports endpoints: send an import to run in the background, and follow it."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import (
    OpenApiExample,
    OpenApiParameter,
    extend_schema,
    extend_schema_view,
)
from rest_framework.generics import get_object_or_404
from rest_framework.request import Request
from rest_framework.response import Response

from loyalty.api.views import ClubScopedViewSet
from loyalty.permits import MEMBERS_IMPORTS_CREATE, MEMBERS_IMPORTS_SHOW
from members import import_services
from members.import_serializers import (
    IMPORT_ID_PATTERN,
    MemberImportPayloadSerializer,
    MemberImportSerializer,
)
from members.models import MemberImport


@extend_schema_view(
    create=extend_schema(
        operation_id="import_members",
        summary="Import members",
        description="Answers 202 at once with the import, status queued; it then runs in the "
        "background (queued, running, then done or failed): follow it with GET "
        "members/imports/{import_id}. Each member row is checked on its own, and the rows "
        "not imported are reported with their reason in rejected_rows. A taken import_id, "
        "or more than MEMBER_IMPORT_MAX_MEMBERS members, is 422; but the same import sent "
        "again once its run has died (queued or running, and not written for "
        "MEMBER_IMPORT_STALE_SECONDS) is run again from its last committed batch, answered "
        "202 with the import as it stands. The service's scheduler resumes such an import "
        "by itself within a minute of its becoming stale.",
        responses={202: MemberImportSerializer},
    ),
    retrieve=extend_schema(
        operation_id="get_member_import",
        summary="Show a member import",
        description="The import's status, its counts and the rows not imported.",
        parameters=[
            OpenApiParameter(
                "import_id",
                str,
                OpenApiParameter.PATH,
                pattern=f"^{IMPORT_ID_PATTERN}$",
                description="The import's id: the client's, or the one made up for it.",
                examples=[OpenApiExample("An import", value="crm-2025-03-01")],
            )
        ],
    ),
)
class MemberImportViewSet(ClubScopedViewSet):
    queryset = MemberImport.objects.all()
    serializer_class = MemberImportSerializer
    input_serializers = {"create": MemberImportPayloadSerializer}
    lookup_field = "import_id"
    lookup_value_regex = IMPORT_ID_PATTERN
    required_permits = {"create": MEMBERS_IMPORTS_CREATE, "retrieve": MEMBERS_IMPORTS_SHOW}

    def get_object(self) -> Any:
        instance = get_object_or_404(self.get_queryset(), import_id=self.kwargs["import_id"])
        self.check_object_permissions(self.request, instance)
        return instance

    def create(self, request: Request, loyalty_club_slug: str) -> Response:
        member_import = import_services.create_import(
            club=self.club, actor=self.actor, **self.payload(request)
        )
        return self.render(member_import, status=202)

    def retrieve(self, request: Request, loyalty_club_slug: str, import_id: str) -> Response:
        return self.render(self.get_object())
