"""URL configuration: the admin, the API under /v3/<club_slug>/ (every app's viewsets on one
router: the one place loyalty imports the apps above it), its schema and docs, the probes
(health, readiness) and the metrics."""

from typing import Any

from django.contrib import admin
from django.http import HttpRequest, HttpResponse
from django.urls import include, path, re_path
from django.views.decorators.csrf import csrf_exempt
from drf_spectacular.views import SpectacularJSONAPIView, SpectacularSwaggerView
from rest_framework.routers import SimpleRouter

from audiences.views import AudienceViewSet
from groups.views import MemberGroupsViewSet, MembersGroupViewSet
from loyalty import metrics
from loyalty.api import error_responses
from loyalty.health import healthz, readyz
from members.import_views import MemberImportViewSet
from members.views import MemberViewSet


@csrf_exempt
def unknown_path(request: HttpRequest, loyalty_club_slug: str) -> HttpResponse:
    # DRF's views are exempt from CSRF, a plain view is not: without the exemption an unsafe
    # method on an unknown path got the CSRF middleware's HTML 403 instead of the JSON 404.
    return error_responses.not_found(request)


class ClubRouter(SimpleRouter):
    """The viewsets' routes, then the API's JSON 404 for any other path under the club."""

    def get_urls(self) -> list[Any]:
        return [*super().get_urls(), re_path(r"^", unknown_path)]


# Every API viewset, under /v3/<loyalty_club_slug>/ (no trailing slash).
router = ClubRouter(trailing_slash=False)
router.register("members_groups", MembersGroupViewSet, basename="members-group")
router.register("members", MemberViewSet, basename="member")
router.register("members/imports", MemberImportViewSet, basename="member-import")
router.register(
    r"members/(?P<member_pk>[0-9]{1,18})/members_groups",
    MemberGroupsViewSet,
    basename="member-members-group",
)
router.register("audiences", AudienceViewSet, basename="audience")

urlpatterns = [
    # Plain Django views, so not in the API's OpenAPI schema: no club, no token. Exempt
    # from CSRF, which would refuse a POST with an HTML 403 before the view's JSON 405.
    path("healthz", csrf_exempt(healthz), name="healthz"),
    path("readyz", csrf_exempt(readyz), name="readyz"),
    path("metrics", csrf_exempt(metrics.metrics), name="metrics"),
    path("admin/", admin.site.urls),
    # JSON, like every answer under /v3/; the docs are the one human page.
    path("v3/schema/", SpectacularJSONAPIView.as_view(), name="api-schema"),
    path("v3/docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
    path("v3/<slug:loyalty_club_slug>/", include(router.urls)),
    # Any other /v3/ path: the API's JSON 404, also when DEBUG shows Django's own pages.
    # CSRF-exempt like the API itself: a POST to an unknown path gets the JSON 404, not
    # Django's HTML CSRF refusal.
    re_path(r"^v3/", csrf_exempt(error_responses.not_found)),
]

handler400 = "loyalty.api.error_responses.bad_request"
handler404 = "loyalty.api.error_responses.not_found"
handler500 = "loyalty.api.error_responses.server_error"
