"""Per-token rate limit: an atomic counter per token and fixed window in Django's cache."""

from __future__ import annotations

import logging
import math
import time
from typing import Any

from django.conf import settings
from django.core.cache import DEFAULT_CACHE_ALIAS, caches
from rest_framework.request import Request
from rest_framework.throttling import SimpleRateThrottle

from loyalty.api.authentication import ClubAccess
from loyalty.cache import DatabaseCache, RedisCache

# Tries to create a missing counter before the store counts as failing: a create loses
# only to a concurrent request's create, after which the increment succeeds.
CREATE_ATTEMPTS = 3

logger = logging.getLogger(__name__)


class CounterStoreError(Exception):
    """The counter could be neither incremented nor created."""


class TokenRateThrottle(SimpleRateThrottle):
    """``settings.API_RATE_LIMIT`` requests per token (e.g. ``600/min``); staff are not limited.

    DRF's own throttle reads a history, decides, then writes it back, so requests arriving
    together all read the same history and all pass. Here each request adds one to the
    counter of its token's current window in a single atomic step (``hit``: one statement
    in the database cache, one round trip in Redis) and passes only if its own count is
    within the limit, so at most the limit pass per window however many processes serve.
    Refused requests count too: a token that keeps calling stays refused until the window
    ends.

    The limit protects the service; it is no reason to refuse a request. When its store
    fails (the cache's database table or Redis unreachable, a table missing) the request is
    let through and a warning logged: the service then runs unlimited rather than down.
    """

    scope = "token"
    # Set by SimpleRateThrottle.__init__ from the rate, undeclared in the stubs.
    num_requests: int | None
    duration: int | None

    def get_rate(self) -> str:
        # Read on every request (throttles are built per request), so the setting can change.
        return str(settings.API_RATE_LIMIT)

    def get_cache_key(self, request: Request, view: Any) -> str | None:
        access = request.auth
        if not isinstance(access, ClubAccess) or access.token is None:
            return None
        # The hash, not the id: ids come back after a rollback, hashes never.
        return self.cache_format % {"scope": self.scope, "ident": access.token.key_hash[:32]}

    def allow_request(self, request: Request, view: Any) -> bool:
        key = self.get_cache_key(request, view)
        if key is None or self.num_requests is None or self.duration is None:
            return True
        now = time.time()
        window = int(now // self.duration)
        window_ends = (window + 1) * self.duration
        self.wait_seconds = window_ends - now
        try:
            count = hit(key, window, window_ends)
        except Exception:  # any failure of the store: the limit fails open, never a 500
            logger.warning("The rate-limit store failed: request let through", exc_info=True)
            return True
        return count <= self.num_requests

    def wait(self) -> float:
        return self.wait_seconds


def hit(key: str, window: int, window_ends: float) -> int:
    """Add one to the counter of ``key`` for the window ``window`` (ending at the Unix time
    ``window_ends``) and return its new value.

    The project's database and Redis caches count in one round trip (``hit``); any other
    cache (locmem) with its ``incr`` and ``add``.
    """
    cache = caches[DEFAULT_CACHE_ALIAS]
    if isinstance(cache, DatabaseCache | RedisCache):
        return cache.hit(key, window_ends)
    key = f"{key}:{window}"
    timeout = math.ceil(window_ends - time.time()) + 1
    # The counter exists for all but a window's first request, so it is incremented first
    # and created only when missing.
    for _attempt in range(CREATE_ATTEMPTS):
        try:
            return int(cache.incr(key))
        except ValueError:
            # Missing or expired: create it, unless a concurrent request just did.
            if cache.add(key, 1, timeout):
                return 1
    raise CounterStoreError(f"the counter {key} could not be created")
