"""Read replicas: the reads of API lists and shows go to the replica, the rest to the primary.

Only a GET or HEAD under ``/v3/`` may read from the replica (``ReplicaReadsMiddleware``
marks it), and only outside a transaction: a write request, anything in an atomic block,
the admin and the commands read the primary, so that nobody reads back a stale copy of
what they just wrote. Writes and migrations always go to the primary.

Two guards keep a replica's trouble from reaching clients:

- A replica that does not answer (stopped, restarting, unreachable) is left alone for
  ``REPLICA_RETRY_SECONDS``: reads go to the primary meanwhile, never a 500.
- After an API write to a club, the primary's WAL position is kept in the cache; the club's
  reads go to the replica only once it has replayed that far, so that no client of the club
  reads a count older than a write it was answered (replication lag shows nowhere).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from contextvars import ContextVar
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db import DEFAULT_DB_ALIAS, DatabaseError, connections
from django.db.models import Model
from django.http import HttpRequest, HttpResponse

REPLICA = "replica"
READ_METHODS = ("GET", "HEAD")
# The service's own data; Django's tables (the cache that counts rate limits, sessions,
# users) stay on the primary.
REPLICATED_APPS = frozenset({"loyalty", "members", "audiences", "groups"})
# Read on the primary even so: a token revoked a moment ago must not still work on a
# replica that lags.
PRIMARY_MODELS = frozenset({"loyalty.apitoken"})

# How long a replica that did not answer is left alone before it is asked again.
REPLICA_RETRY_SECONDS = 10
# How long a club's last written WAL position is kept: far longer than any lag worth
# serving reads through.
WRITTEN_TTL_SECONDS = 3600
API_PREFIX = "/v3/"

logger = logging.getLogger(__name__)

_replica_reads: ContextVar[bool] = ContextVar("replica_reads", default=False)
# When the replica, after failing to answer, may be asked again (time.monotonic()).
_replica_down_until = 0.0


class ReplicaRouter:
    def db_for_read(self, model: type[Model], **hints: Any) -> str:
        if (
            _replica_reads.get()
            and model._meta.app_label in REPLICATED_APPS
            and model._meta.label_lower not in PRIMARY_MODELS
            and not connections[DEFAULT_DB_ALIAS].in_atomic_block
        ):
            return REPLICA
        return DEFAULT_DB_ALIAS

    def db_for_write(self, model: type[Model], **hints: Any) -> str:
        return DEFAULT_DB_ALIAS

    def allow_relation(self, obj1: Model, obj2: Model, **hints: Any) -> bool:
        # The replica is a copy of the primary: an object read from either is the same row.
        return True

    def allow_migrate(self, db: str, app_label: str, **hints: Any) -> bool:
        return db == DEFAULT_DB_ALIAS


def replica_configured() -> bool:
    return "loyalty.db_routing.ReplicaRouter" in settings.DATABASE_ROUTERS


def _left_alone(exc: DatabaseError) -> bool:
    """Leave the replica alone for a while after it failed; always False."""
    global _replica_down_until
    _replica_down_until = time.monotonic() + REPLICA_RETRY_SECONDS
    logger.warning(
        "The read replica does not answer (%s): reads go to the primary for %d s",
        exc,
        REPLICA_RETRY_SECONDS,
    )
    return False


def replica_serves(club_slug: str) -> bool:
    """Whether the replica may serve the club's reads now: it answers (after a failure it is
    not asked for a while), and it has replayed the club's last API write."""
    if time.monotonic() < _replica_down_until:
        return False
    replica = connections[REPLICA]
    try:
        # A kept connection is checked once per request (CONN_HEALTH_CHECKS) before reuse.
        replica.close_if_health_check_failed()
        replica.ensure_connection()
        return replica_has_writes_of(club_slug)
    except DatabaseError as exc:
        return _left_alone(exc)


def _written_key(club_slug: str) -> str:
    return f"replica:written:{club_slug}"


def remember_write(club_slug: str) -> None:
    """Keep the primary's WAL position after a write to the club, for its reads to wait for."""
    primary = connections[DEFAULT_DB_ALIAS]
    if primary.vendor != "postgresql":
        return
    with primary.cursor() as cursor:
        # The insert position: at or past the commit record of everything committed so far.
        cursor.execute("SELECT pg_current_wal_insert_lsn()::text")
        (position,) = cursor.fetchone()
    cache.set(_written_key(club_slug), position, timeout=WRITTEN_TTL_SECONDS)


def replica_has_writes_of(club_slug: str) -> bool:
    """Whether the replica has replayed the club's last API write (or none is known)."""
    position = cache.get(_written_key(club_slug))
    replica = connections[REPLICA]
    if position is None or replica.vendor != "postgresql":
        return True
    with replica.cursor() as cursor:
        # NULL on a server that is not a standby: it is the primary's own data.
        cursor.execute("SELECT COALESCE(pg_last_wal_replay_lsn() >= %s::pg_lsn, true)", [position])
        (caught_up,) = cursor.fetchone()
    return bool(caught_up)


def _club_slug(request: HttpRequest) -> str:
    """The club of an API path (``/v3/<club>/...``), or "" for another path."""
    parts = request.path.split("/", 3)
    return parts[2] if request.path.startswith(API_PREFIX) and len(parts) > 3 else ""


class ReplicaReadsMiddleware:
    """Let the reads of an API GET or HEAD go to the replica, for that request only, if it
    answers and has replayed the club's last write; after an API write, note its position."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        club = _club_slug(request)
        if not (club and replica_configured()):
            return self.get_response(request)
        if request.method not in READ_METHODS:
            response = self.get_response(request)
            try:
                remember_write(club)
            except DatabaseError:
                # The answer stands; the club's reads may then be a moment behind.
                logger.exception("Could not note the WAL position of a write to %s", club)
            return response
        marked = _replica_reads.set(replica_serves(club))
        try:
            return self.get_response(request)
        finally:
            _replica_reads.reset(marked)
