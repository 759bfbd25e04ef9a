"""API authentication: club tokens in X-Client-Authorization, or a staff member's admin session."""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AnonymousUser
from django.db import connections, router
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
INVALID_TOKEN = "Invalid token for this loyalty club."
MISSING_HEADER = "The {header} header is required."
MALFORMED_HEADER = "The {header} header must be 1 to {max} printable characters."


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
            raise MissingClientHeader(MISSING_HEADER.format(header=header))
        if (
            not value.strip()
            or len(value) > CLIENT_HEADER_MAX_LENGTH
            or any(unicodedata.category(char) == "Cc" for char in value)
        ):
            raise MalformedClientHeader(
                MALFORMED_HEADER.format(header=header, max=CLIENT_HEADER_MAX_LENGTH)
            )


class TokenLookup:
    """A club's token by the club's slug and the token's hash, with its club (and permits):
    one statement, whose SQL is compiled once per database rather than on every request.
    """

    def __init__(self, alias: str) -> None:
        self.alias = alias
        # Marks where the parameters go: the compiled SQL takes them in its own order.
        slug, key_hash = "<slug>", "<key_hash>"
        query = (
            ApiToken.objects.using(alias)
            .select_related("club")
            .filter(club__slug=slug, key_hash=key_hash)
            .order_by()  # at most one row: the slug and the club's hash are unique
        )
        self.compiler = query.query.get_compiler(alias)
        self.sql, params = self.compiler.as_sql()
        self.order = [{slug: 0, key_hash: 1}[param] for param in params]
        klass_info = self.compiler.klass_info
        assert klass_info is not None  # a model's query
        club_info = klass_info["related_klass_infos"][0]
        self.token_columns = klass_info["select_fields"]
        self.club_columns = club_info["select_fields"]
        columns = [column for column, _sql, _alias in self.compiler.select]
        self.token_names = [columns[i].target.attname for i in self.token_columns]
        self.club_names = [columns[i].target.attname for i in self.club_columns]
        self.converters = self.compiler.get_converters(columns)
        self.club_field = club_info["field"]

    def find(self, slug: str, key_hash: str) -> ApiToken | None:
        values = (slug, key_hash)
        with connections[self.alias].cursor() as cursor:
            cursor.execute(self.sql, [values[i] for i in self.order])
            row = cursor.fetchone()
        if row is None:
            return None
        if self.converters:
            (row,) = self.compiler.apply_converters([row], self.converters)
        token = ApiToken.from_db(self.alias, self.token_names, [row[i] for i in self.token_columns])
        club = Club.from_db(self.alias, self.club_names, [row[i] for i in self.club_columns])
        self.club_field.set_cached_value(token, club)
        return token


_token_lookups: dict[str, TokenLookup] = {}


def token_lookup() -> TokenLookup:
    """The token lookup of the database tokens are read from (always the primary)."""
    alias = router.db_for_read(ApiToken)
    lookup = _token_lookups.get(alias)
    if lookup is None:
        lookup = _token_lookups[alias] = TokenLookup(alias)
    return lookup


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
        token = token_lookup().find(slug, hash_token(raw.strip()))
        # A revoked token gets the same answer as an unknown one: it does not confirm that
        # a leaked token was real, nor its club.
        if token is None or not token.is_active:
            raise exceptions.AuthenticationFailed(INVALID_TOKEN)
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
