"""Per-token rate limit, counted in Django's cache."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from rest_framework.request import Request
from rest_framework.throttling import SimpleRateThrottle

from loyalty.authentication import ClubAccess


class TokenRateThrottle(SimpleRateThrottle):
    """``settings.API_RATE_LIMIT`` requests per token (e.g. ``600/min``); staff are not limited."""

    scope = "token"

    def get_rate(self) -> str:
        # Read on every request (throttles are built per request), so the setting can change.
        return str(settings.API_RATE_LIMIT)

    def get_cache_key(self, request: Request, view: Any) -> str | None:
        access = request.auth
        if not isinstance(access, ClubAccess) or access.token is None:
            return None
        return self.cache_format % {"scope": self.scope, "ident": access.token.pk}
