"""API test fixtures: clients of one club's API, with a token or a staff session.

Loaded for every test module by tests/conftest.py. A client's paths
are relative to ``/v3/<slug>/`` unless they start with ``/``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import pytest
from django.contrib.auth.models import Permission, User
from django.core.cache import cache
from django.http import HttpResponse
from rest_framework.test import APIClient

from loyalty.models import ApiToken, Club
from loyalty.permits import ALL_PERMITS
from loyalty.services import create_api_token

CLIENT_HEADERS = {"HTTP_X_USER_AGENT": "tests/1.0", "HTTP_X_PRODUCT_NAME": "Members Groups tests"}


class ClubClient(APIClient):
    """An API client whose relative paths are under one club's ``/v3/<slug>/``."""

    def __init__(self, slug: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.base = f"/v3/{slug}/"

    def generic(self, method: str, path: str, *args: Any, **kwargs: Any) -> HttpResponse:
        return super().generic(
            method, path if path.startswith("/") else self.base + path, *args, **kwargs
        )


@pytest.fixture
def make_token(db: None) -> Callable[..., tuple[ApiToken, str]]:
    """Create a token of a club (every permit unless named); return it and its raw value."""

    def make(club: Club, permits: Iterable[str] = ALL_PERMITS) -> tuple[ApiToken, str]:
        return create_api_token(club=club, name="tests", permits=permits)

    return make


@pytest.fixture
def client_for() -> Callable[..., ClubClient]:
    """A client of the club ``slug`` sending the raw token and the client headers.

    ``headers`` override the client headers; a None value leaves that header out.
    """

    def make(slug: str, raw: str | None = None, **headers: str | None) -> ClubClient:
        client = ClubClient(slug)
        if raw is not None:
            sent = {
                key: value
                for key, value in {**CLIENT_HEADERS, **headers}.items()
                if value is not None
            }
            client.credentials(HTTP_X_CLIENT_AUTHORIZATION=raw, **sent)
        return client

    return make


@pytest.fixture
def make_client(
    make_token: Callable[..., tuple[ApiToken, str]], client_for: Callable[..., ClubClient]
) -> Callable[..., ClubClient]:
    """A client of a club whose token carries ``permits`` (every permit by default)."""

    def make(club: Club, permits: Iterable[str] = ALL_PERMITS) -> ClubClient:
        return client_for(club.slug, make_token(club, permits)[1])

    return make


@pytest.fixture
def api(club: Club, make_client: Callable[..., ClubClient]) -> ClubClient:
    """A client of ``club`` with every permit."""
    return make_client(club)


@pytest.fixture
def staff_client(db: None) -> Callable[..., ClubClient]:
    """A client of the club ``slug`` logged into the admin as a staff user."""

    def make(
        slug: str,
        *,
        manages: Iterable[Club] = (),
        superuser: bool = False,
        permissions: Iterable[str] = (),
        **kwargs: Any,
    ) -> ClubClient:
        """``permissions``: the user's admin permissions, as ``"app_label.codename"``."""
        user = User.objects.create_user(
            username=f"staff{User.objects.count()}", is_staff=True, is_superuser=superuser
        )
        user.managed_clubs.set(manages)
        for permission in permissions:
            app_label, codename = permission.split(".")
            user.user_permissions.add(
                Permission.objects.get(content_type__app_label=app_label, codename=codename)
            )
        client = ClubClient(slug, **kwargs)
        client.force_login(user)
        return client

    return make


@pytest.fixture
def fresh_rate_counters() -> None:
    """Forget the request counts of earlier tests: token ids repeat once rolled back."""
    cache.clear()
