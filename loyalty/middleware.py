"""Request plumbing: request ids, one structured log line per request, web database timeouts."""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections.abc import Callable
from contextlib import ExitStack
from contextvars import ContextVar
from typing import Any

from django.conf import settings
from django.core.exceptions import SuspiciousOperation
from django.db import connections
from django.db.backends.base.base import BaseDatabaseWrapper
from django.http import HttpRequest, HttpResponse

from loyalty import reporting
from loyalty.api.error_responses import (
    API_PREFIX,
    api_response_for_exception,
    suspicious_request,
)
from loyalty.logs import request_id

REQUEST_ID_HEADER = "X-Request-ID"
# An incoming id is kept only if it cannot garble a log line or a header (UUIDs, hex and
# the usual tracing ids fit); anything else is replaced by a fresh one.
SANE_REQUEST_ID = re.compile(r"[A-Za-z0-9._:=+/-]{1,128}")

logger = logging.getLogger("loyalty.request")


class RequestLogMiddleware:
    """Tag the request with an id (the caller's X-Request-ID if sane), echo it, log the outcome;
    error reports carry the id and the club."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        incoming = request.headers.get(REQUEST_ID_HEADER, "")
        rid = incoming if SANE_REQUEST_ID.fullmatch(incoming) else uuid.uuid4().hex
        token = request_id.set(rid)
        reporting.tag_request(request_id=rid)
        started = time.perf_counter()
        try:
            response = self.get_response(request)
            response[REQUEST_ID_HEADER] = rid
            match = request.resolver_match
            logger.info(
                "%s %s %s",
                request.method,
                request.path,
                response.status_code,
                extra={
                    "method": request.method,
                    "path": request.path,
                    "status": response.status_code,
                    "duration_ms": round((time.perf_counter() - started) * 1000, 1),
                    "club": match.kwargs.get("loyalty_club_slug") if match else None,
                },
            )
            return response
        finally:
            request_id.reset(token)

    def process_view(
        self,
        request: HttpRequest,
        view: Callable[..., HttpResponse],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> None:
        if club := kwargs.get("loyalty_club_slug"):
            reporting.tag_request(club=club)


class ApiErrorsInDebugMiddleware:
    """Under /v3/ with DEBUG on, answer refusals and errors in the API's error format, as
    with DEBUG off, where Django's handlers (``handler400/404/500``) are the API's own;
    Django would show its debug pages instead.

    A view's exceptions come to ``process_exception``. The Host header and the query string
    are checked here first, since Django reads them lazily, in middleware further in (its
    debug page reading the query string again would fail the same way).
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if settings.DEBUG and request.path.startswith(API_PREFIX):
            try:
                request.get_host()
                request.GET  # noqa: B018 (parsed here to be refused here)
            except SuspiciousOperation as exc:
                return suspicious_request(request, exc)
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if settings.DEBUG and request.path.startswith(API_PREFIX):
            return api_response_for_exception(request, exception)
        return None


# The web timeouts (statement, lock) of the request being served, for the connections it
# opens; None outside web requests (commands, the task worker).
_web_timeouts: ContextVar[tuple[int, int] | None] = ContextVar("web_timeouts", default=None)


class DatabaseTimeoutsMiddleware:
    """Bound how long a web request's statements run and wait for locks (PostgreSQL).

    Only web processes build middleware, so the timeouts never reach management commands or
    the task worker, which may rightly run for minutes. They are set once per connection,
    when a request opens it (``set_timeouts_of_new_connection``), outside any transaction so
    that a rollback cannot undo them: a kept connection (CONN_MAX_AGE) carries them into the
    next requests without a statement more. A connection opened outside a request and used
    by one gets them before the request's first statement; if that statement is in a
    transaction, the next request sets them again (a rollback would have undone them).
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if settings.DB_TRANSACTION_POOLING:
            # The pooler's server sessions carry the timeouts (see DB_TRANSACTION_POOLING).
            return self.get_response(request)
        timeouts = (int(settings.DB_STATEMENT_TIMEOUT_MS), int(settings.DB_LOCK_TIMEOUT_MS))
        marked = _web_timeouts.set(timeouts)
        try:
            # Every PostgreSQL alias: a replica's reads are bounded like the primary's.
            with ExitStack() as stack:
                for alias in connections:
                    connection = connections[alias]
                    if (
                        connection.vendor == "postgresql"
                        and connection.connection is not None
                        and not _carries(connection, timeouts)
                    ):
                        stack.enter_context(connection.execute_wrapper(_timeouts_once(timeouts)))
                return self.get_response(request)
        finally:
            _web_timeouts.reset(marked)


def set_timeouts_of_new_connection(
    sender: Any, connection: BaseDatabaseWrapper, **kwargs: Any
) -> None:
    """``connection_created``: give a connection a web request opens the web timeouts."""
    timeouts = _web_timeouts.get()
    if timeouts is not None and connection.vendor == "postgresql":
        _set_timeouts(connection, timeouts)


def _set_timeouts(connection: BaseDatabaseWrapper, timeouts: tuple[int, int]) -> None:
    # The driver's cursor: SET takes no bound parameters, and is no query of the request's
    # own to log, count or wrap.
    with connection.connection.cursor() as cursor:
        cursor.execute(f"SET statement_timeout = {timeouts[0]}; SET lock_timeout = {timeouts[1]}")
    if not connection.in_atomic_block:
        # Outside a transaction the SET lasts as long as the connection: note it there.
        connection.web_timeouts = (connection.connection, timeouts)  # type: ignore[attr-defined]


def _carries(connection: BaseDatabaseWrapper, timeouts: tuple[int, int]) -> bool:
    """Whether the connection's session has these timeouts (set outside a transaction)."""
    noted = getattr(connection, "web_timeouts", None)
    return noted is not None and noted[0] is connection.connection and noted[1] == timeouts


def _timeouts_once(timeouts: tuple[int, int]) -> Callable[..., Any]:
    """An execute wrapper that sets the timeouts before the connection's first statement."""
    applied = False

    def set_timeouts(
        execute: Callable[..., Any], sql: str, params: Any, many: bool, context: Any
    ) -> Any:
        nonlocal applied
        if not applied:
            _set_timeouts(context["connection"], timeouts)
            applied = True
        return execute(sql, params, many, context)

    return set_timeouts
