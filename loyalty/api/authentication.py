"""API authentication: club tokens in X-Client-Authorization, or a staff member's admin session."""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AnonymousUser
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication, SessionAuthentication
from rest_framework.request import Request

from loyalty import services
from loyalty.models import ApiToken, Club, hash_token
from loyalty.permits import SESSION_PERMISSIONS

TOKEN_HEADER = "X-Client-Authorization"
CLIENT_HEADERS = ("X-User-Agent", "X-Product-Name")
CLIENT_HEADER_MAX_LENGTH = 255


def meta_key(header: str) -> str:
    """The WSGI ``META`` key of an HTTP header (``X-User-Agent`` -> ``HTTP_X_USER_AGENT``)."""
    return "HTTP_" + header.upper().replace("-", "_")


class MissingClientHeader(exceptions.APIException):
    status_code = 470
    default_detail = "A required client header is missing."
    default_code = "missing_header"


class MalformedClientHeader(exceptions.APIException):
    status_code = 471
    default_detail = "A client header is malformed."
    default_code = "malformed_header"


@dataclass(frozen=True)
class ClubAccess:
    """What ``request.auth`` holds once a caller is let into a club.

    ``token`` is None for staff using their admin session (``user``), who may do what their
    admin permissions allow (``SESSION_PERMISSIONS``).
    """

    club: Club
    token: ApiToken | None
    actor: str
    user: Any = None

    def has_permit(self, permit: str | None) -> bool:
        if permit is None:
            return False
        if self.token is None:
            return bool(self.user.has_perms(SESSION_PERMISSIONS[permit]))
        return permit in self.token.permits


def club_slug(request: Request) -> str | None:
    slug: str | None = (request.parser_context or {}).get("kwargs", {}).get("loyalty_club_slug")
    return slug


def check_client_headers(request: Request) -> None:
    """Raise 470 for a missing X-User-Agent/X-Product-Name header, 471 for a malformed one."""
    for header in CLIENT_HEADERS:
        value = request.META.get(meta_key(header))
        if value is None:
            raise MissingClientHeader(f"The {header} header is required.")
        if (
            not value.strip()
            or len(value) > CLIENT_HEADER_MAX_LENGTH
            or any(unicodedata.category(char) == "Cc" for char in value)
        ):
            raise MalformedClientHeader(
                f"The {header} header must be 1 to {CLIENT_HEADER_MAX_LENGTH} printable characters."
            )


class ClubTokenAuthentication(BaseAuthentication):
    """A club's API token, looked up by the club of the path and the token's hash.

    A token of another club, or any token under an unknown club slug, is simply not found:
    the answer (401) does not tell which clubs exist.
    """

    def authenticate(self, request: Request) -> tuple[AnonymousUser, ClubAccess] | None:
        raw = request.META.get(meta_key(TOKEN_HEADER))
        slug = club_slug(request)
        if raw is None or slug is None:
            return None
        token = (
            ApiToken.objects.select_related("club")
            .filter(club__slug=slug, key_hash=hash_token(raw.strip()))
            .first()
        )
        # A revoked token gets the same answer as an unknown one: it does not confirm that
        # a leaked token was real, nor its club.
        if token is None or not token.is_active:
            raise exceptions.AuthenticationFailed("Invalid token for this loyalty club.")
        check_client_headers(request)
        services.touch_api_token(token=token)
        return AnonymousUser(), ClubAccess(
            club=token.club, token=token, actor=f"token:{token.name}"
        )

    def authenticate_header(self, request: Request) -> str:
        # Without a WWW-Authenticate challenge DRF would turn every 401 into a 403.
        return f'{TOKEN_HEADER} realm="api"'


class StaffSessionAuthentication(SessionAuthentication):
    """Staff logged into the admin: the clubs they manage, or every club for a superuser."""

    def authenticate(self, request: Request) -> tuple[Any, ClubAccess] | None:
        user = getattr(request._request, "user", None)
        slug = club_slug(request)
        if user is None or not (user.is_active and user.is_staff) or slug is None:
            return None
        clubs = Club.objects.filter(slug=slug)
        if not user.is_superuser:
            clubs = clubs.filter(managers=user)
        club = clubs.first()
        if club is None:
            if user.is_superuser:
                # A superuser may see every club, so an unknown slug is plainly not found.
                raise exceptions.NotFound()
            return None
        self.enforce_csrf(request)
        return user, ClubAccess(
            club=club, token=None, actor=f"user:{user.get_username()}", user=user
        )


class ClubTokenScheme(OpenApiAuthenticationExtension):
    """Document the token and the two client headers as one security requirement (ANDed)."""

    target_class = ClubTokenAuthentication
    name = ["clientToken", "userAgent", "productName"]

    def get_security_definition(self, auto_schema: Any) -> list[dict[str, Any]]:
        return [
            {
                "type": "apiKey",
                "in": "header",
                "name": TOKEN_HEADER,
                "description": "The club's API token. Missing, invalid, revoked or another "
                "club's token: 401. A token lacking the operation's permit: 403.",
            },
            {
                "type": "apiKey",
                "in": "header",
                "name": "X-User-Agent",
                "description": "The calling application and its version. Required with a "
                f"token: missing {MissingClientHeader.status_code}, malformed (blank, "
                f"over {CLIENT_HEADER_MAX_LENGTH} characters or with control characters) "
                f"{MalformedClientHeader.status_code}.",
            },
            {
                "type": "apiKey",
                "in": "header",
                "name": "X-Product-Name",
                "description": "The product the call is made for. Required with a token, "
                "validated like X-User-Agent.",
            },
        ]


class StaffSessionScheme(OpenApiAuthenticationExtension):
    target_class = StaffSessionAuthentication
    name = "staffSession"

    def get_security_definition(self, auto_schema: Any) -> dict[str, Any]:
        return {
            "type": "apiKey",
            "in": "cookie",
            "name": settings.SESSION_COOKIE_NAME,
            "description": "The admin session of a staff user: the clubs they manage (every "
            "club for a superuser), doing what their admin permissions allow (no client "
            "headers needed); unsafe methods need the CSRF token.",
        }
