"""URL configuration: the admin, the API under /v3/<club_slug>/, and its schema and docs."""

from django.contrib import admin
from django.urls import path

urlpatterns = [
    path("admin/", admin.site.urls),
]
