"""The probes load balancers and orchestrators ask.

``/healthz`` (liveness) asks only whether the database answers: cheap enough for every few
seconds. ``/readyz`` (readiness) also asks the cache (the rate limits' counters, Redis with
``CACHE_URL=redis://...``) and the task backend (the database's task table, or RQ's Redis),
and says which of them fails. A read replica is reported too, but a replica down leaves the
service ready: its reads go to the primary.
"""

from __future__ import annotations

from collections.abc import Callable

from django.core.cache import cache
from django.db import DatabaseError, connection
from django.http import HttpRequest, HttpResponse
from django_tasks import DEFAULT_TASK_BACKEND_ALIAS, task_backends
from django_tasks_db.backend import DatabaseBackend
from django_tasks_db.models import DBTaskResult

from loyalty import db_routing
from loyalty.api.error_responses import (
    DATABASE_UNAVAILABLE,
    RETRY_AFTER_SECONDS,
    database_fault,
    error_body,
    service_unavailable,
)
from loyalty.api.renderers import json_response

OK = "ok"


def _method_not_allowed(request: HttpRequest) -> HttpResponse | None:
    if request.method in ("GET", "HEAD"):
        return None
    response = json_response(error_body("Method not allowed"), status=405)
    response["Allow"] = "GET, HEAD"
    return response


def healthz(request: HttpRequest) -> HttpResponse:
    """200 ``{"status": "ok"}`` once a trivial query answers, else 503 in the error format."""
    if refused := _method_not_allowed(request):
        return refused
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except DatabaseError as exc:
        return service_unavailable(database_fault(exc) or DATABASE_UNAVAILABLE)
    return json_response({"status": OK})


def _database() -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()
    return OK


def _cache() -> str:
    cache.get("readyz")
    return OK


def _tasks() -> str:
    backend = task_backends[DEFAULT_TASK_BACKEND_ALIAS]
    if isinstance(backend, DatabaseBackend):
        DBTaskResult.objects.filter(backend_name=backend.alias).exists()
        return OK
    if backend.__class__.__module__.startswith("django_tasks_rq"):
        from django_rq import get_queue

        for name in backend.queues:
            get_queue(name).connection.ping()
        return OK
    return "nothing to check (tasks run in the process that enqueues them)"


CHECKS: dict[str, Callable[[], str]] = {"database": _database, "cache": _cache, "tasks": _tasks}


def readyz(request: HttpRequest) -> HttpResponse:
    """200 with each check's outcome once the database, the cache and the task backend all
    answer; else 503 naming the first that does not (``checks`` has them all)."""
    if refused := _method_not_allowed(request):
        return refused
    checks: dict[str, str] = {}
    failing = []
    for name, check in CHECKS.items():
        try:
            checks[name] = check()
        # Whatever the client library raises (a database, Redis or socket error) means the
        # dependency cannot serve; the probe says so instead of failing itself.
        except Exception as exc:
            checks[name] = f"unavailable ({type(exc).__name__})"
            failing.append(name)
    if db_routing.replica_configured():
        checks["replica"] = (
            OK if db_routing.replica_serves("") else "unavailable (reads go to the primary)"
        )
    if failing:
        response = json_response(
            {**error_body(f"Not ready: {', '.join(failing)} unavailable."), "checks": checks},
            status=503,
        )
        response["Retry-After"] = str(RETRY_AFTER_SECONDS)
        return response
    return json_response({"status": OK, "checks": checks})
