"""The single DRF router: every API viewset, under /v3/<loyalty_club_slug>/ (no trailing slash)."""

from typing import Any

from django.http import HttpRequest, HttpResponse
from django.urls import re_path
from django.views.decorators.csrf import csrf_exempt
from rest_framework.routers import SimpleRouter

from audiences.views import AudienceViewSet
from groups.views import MemberGroupsViewSet, MembersGroupViewSet
from loyalty import exceptions
from members.import_views import MemberImportViewSet
from members.views import MemberViewSet


@csrf_exempt
def unknown_path(request: HttpRequest, loyalty_club_slug: str) -> HttpResponse:
    # DRF's views are exempt from CSRF, a plain view is not: without the exemption an unsafe
    # method on an unknown path got the CSRF middleware's HTML 403 instead of the JSON 404.
    return exceptions.not_found(request)


class ClubRouter(SimpleRouter):
    """The viewsets' routes, then the API's JSON 404 for any other path under the club."""

    def get_urls(self) -> list[Any]:
        return [*super().get_urls(), re_path(r"^", unknown_path)]


router = ClubRouter(trailing_slash=False)
router.register("members_groups", MembersGroupViewSet, basename="members-group")
router.register("members", MemberViewSet, basename="member")
router.register("members/imports", MemberImportViewSet, basename="member-import")
router.register(
    r"members/(?P<member_id>[0-9]{1,18})/members_groups",
    MemberGroupsViewSet,
    basename="member-members-group",
)
router.register("audiences", AudienceViewSet, basename="audience")
