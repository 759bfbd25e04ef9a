"""URL configuration: the admin, the API under /v3/<club_slug>/, its schema and docs, the
probes (health, readiness) and the metrics."""

from django.contrib import admin
from django.urls import include, path, re_path
from django.views.decorators.csrf import csrf_exempt
from drf_spectacular.views import SpectacularJSONAPIView, SpectacularSwaggerView

from loyalty import exceptions, metrics
from loyalty.api import router
from loyalty.health import healthz, readyz

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
    re_path(r"^v3/", csrf_exempt(exceptions.not_found)),
]

handler400 = "loyalty.exceptions.bad_request"
handler404 = "loyalty.exceptions.not_found"
handler500 = "loyalty.exceptions.server_error"
