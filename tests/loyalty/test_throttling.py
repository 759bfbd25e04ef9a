"""The per-token rate limit holds when many requests of one token arrive at once."""

from __future__ import annotations

import os
import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest
from django.core.cache import caches
from django.db import connection
from django.utils import timezone

from loyalty.cache import DatabaseCache
from loyalty.models import ApiToken, Club
from tests.api_fixtures import ClubClient
from tests.factories import ClubFactory

# The threads' own connections see committed rows only.
pytestmark = pytest.mark.django_db(transaction=True)

LIMIT = 10
REQUESTS = 40
LOCMEM = {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "burst"}
DATABASE = {"BACKEND": "loyalty.cache.DatabaseCache", "LOCATION": "django_cache"}
# A database of the Redis server the tests use (REDIS_URL) that no other test touches.
REDIS = {
    "BACKEND": "loyalty.cache.RedisCache",
    "LOCATION": os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0").rsplit("/", 1)[0] + "/13",
}


def report(line: str) -> None:
    """Show a measured figure in the test output (pytest -s)."""
    print(f"\n{line}")  # noqa: T201 - the measurement is what the test reports


def fire_at_once(count: int, send: Callable[[], int]) -> Counter[int]:
    """Run ``send`` in ``count`` threads released together; count the statuses."""
    barrier = threading.Barrier(count)
    statuses: list[int] = []

    def run() -> None:
        try:
            barrier.wait()
            statuses.append(send())
        finally:
            connection.close()

    threads = [threading.Thread(target=run) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return Counter(statuses)


def burst_of_one_token(
    backend: dict[str, str],
    settings: Any,
    make_token: Callable[..., tuple[ApiToken, str]],
    client_for: Callable[..., ClubClient],
) -> None:
    """``REQUESTS`` parallel requests of one token pass exactly ``LIMIT``."""
    settings.CACHES = {"default": backend}
    # An hour's window: a burst of a second does not straddle two windows.
    settings.API_RATE_LIMIT = f"{LIMIT}/hour"
    club: Club = ClubFactory()
    token, raw = make_token(club)
    # Recently used: the requests only read the token, as most do.
    ApiToken.objects.filter(pk=token.pk).update(last_used_at=timezone.now())

    try:
        statuses = fire_at_once(
            REQUESTS, lambda: client_for(club.slug, raw).get("members_groups").status_code
        )
    finally:
        caches["default"].clear()

    report(
        f"{backend['BACKEND']}: {REQUESTS} parallel requests, limit {LIMIT}: "
        f"{statuses[200]} passed, {statuses[429]} refused, overshoot {statuses[200] - LIMIT}"
    )
    assert statuses == {200: LIMIT, 429: REQUESTS - LIMIT}


def test_parallel_requests_of_one_token_pass_at_most_the_limit(
    settings: Any,
    make_token: Callable[..., tuple[ApiToken, str]],
    client_for: Callable[..., ClubClient],
) -> None:
    # The database cache's burst runs in tests/postgres: concurrent writers on SQLite's
    # shared in-memory test database lock each other out.
    burst_of_one_token(LOCMEM, settings, make_token, client_for)


def test_parallel_requests_counted_in_redis_pass_at_most_the_limit(
    settings: Any,
    make_token: Callable[..., tuple[ApiToken, str]],
    client_for: Callable[..., ClubClient],
) -> None:
    burst_of_one_token(REDIS, settings, make_token, client_for)


def test_the_database_cache_counts_hits_within_a_window_and_starts_again_in_the_next() -> None:
    cache = DatabaseCache("django_cache", {})
    now = time.time()

    in_an_ended_window = [cache.hit("token", now - 1) for _ in range(2)]
    in_a_current_window = [cache.hit("token", now + 60) for _ in range(3)]

    assert in_an_ended_window == [1, 1]
    assert in_a_current_window == [1, 2, 3]
    assert cache.hit("another-token", now + 60) == 1


def test_the_database_cache_counts_every_increment_and_not_expired_keys() -> None:
    cache = DatabaseCache("django_cache", {})
    cache.set("counter", 0, 60)
    cache.set("expired", 0, -1)

    assert [cache.incr("counter") for _ in range(3)] == [1, 2, 3]
    assert cache.incr("counter", 5) == 8
    assert cache.get("counter") == 8
    for key in ("missing", "expired"):
        with pytest.raises(ValueError, match="not found"):
            cache.incr(key)
