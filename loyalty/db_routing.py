"""Read replicas: the reads of API lists and shows go to the replica, the rest to the primary.

Only a GET or HEAD under ``/v3/`` may read from the replica (``ReplicaReadsMiddleware``
marks it), and only outside a transaction: a write request, anything in an atomic block,
the admin and the commands read the primary, so that nobody reads back a stale copy of
what they just wrote. Writes and migrations always go to the primary.
"""

from __future__ import annotations

from collections.abc import Callable
from contextvars import ContextVar
from typing import Any

from django.db import DEFAULT_DB_ALIAS, connections
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

_replica_reads: ContextVar[bool] = ContextVar("replica_reads", default=False)


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


class ReplicaReadsMiddleware:
    """Let the reads of an API GET or HEAD go to the replica, for that request only."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.method not in READ_METHODS or not request.path.startswith("/v3/"):
            return self.get_response(request)
        marked = _replica_reads.set(True)
        try:
            return self.get_response(request)
        finally:
            _replica_reads.reset(marked)
