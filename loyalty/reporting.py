"""Error reports that carry no member data: Sentry events, and the ADMINS' error emails.

Both keep what finds the fault (the exception's type and traceback, the route, the request
id that finds its log lines, the club) and drop what could hold a member's data: request
bodies, query strings, cookies, headers but a few, local variables, breadcrumbs, and the
message of a database error (whose DETAIL quotes the row, emails included).
"""

from __future__ import annotations

from typing import Any

import sentry_sdk
from django.views.debug import ExceptionReporter
from sentry_sdk.integrations.django import DjangoIntegration
from sentry_sdk.types import Event, Hint

# The request headers an event keeps: none of them can hold a member's data or a secret.
SAFE_HEADERS = frozenset(
    {"Content-Length", "Content-Type", "Host", "X-Product-Name", "X-Request-Id", "X-User-Agent"}
)
# Exceptions whose message may quote stored values (psycopg's and Django's database errors).
DATABASE_ERROR_MODULES = ("psycopg", "django.db")


def init_sentry(dsn: str, *, environment: str, release: str | None, **options: Any) -> None:
    """Report unhandled errors (requests, tasks, scheduled jobs, error logs) to Sentry."""
    sentry_sdk.init(
        dsn=dsn,
        environment=environment,
        release=release,
        integrations=[DjangoIntegration(transaction_style="url")],
        # send_default_pii stays at its default, off: no user, cookies or client addresses.
        max_request_body_size="never",
        include_local_variables=False,
        max_breadcrumbs=0,
        before_send=scrub_event,
        **options,
    )


def scrub_event(event: Event, hint: Hint) -> Event:
    """Strip an event of whatever may hold member data (see the module's docstring)."""
    request: dict[str, Any] | None = event.get("request")
    if request is not None:
        for key in ("data", "query_string", "cookies", "env"):
            request.pop(key, None)
        if url := request.get("url"):
            request["url"] = url.split("?", 1)[0]
        headers = request.get("headers") or {}
        request["headers"] = {k: v for k, v in headers.items() if k.title() in SAFE_HEADERS}
    for exception in (event.get("exception") or {}).get("values", []):
        if (exception.get("module") or "").startswith(DATABASE_ERROR_MODULES):
            exception["value"] = "(the database's message is not sent: it may quote a row)"
    return event


def report_exception(exc: BaseException) -> None:
    """Report an error that was handled (and logged) rather than raised, when Sentry is on."""
    if sentry_sdk.is_initialized():
        sentry_sdk.capture_exception(exc)


def tag_request(**tags: str) -> None:
    """Tag whatever this request reports (its id, its club) when Sentry is on."""
    if sentry_sdk.is_initialized():
        # The Django integration gives each request an isolation scope of its own.
        sentry_sdk.get_isolation_scope().set_tags(tags)


class TracebackOnlyReporter(ExceptionReporter):
    """Django's error report for the ADMINS' emails, without local variables, query strings,
    form fields, cookies, settings or request headers."""

    def get_traceback_data(self) -> dict[str, Any]:
        data = super().get_traceback_data()
        for frame in data.get("frames", []):
            frame["vars"] = []
        data.update(
            request_meta={},
            request_COOKIES_items=[],
            filtered_POST_items=[],
            request_GET_items=[],
            request_FILES_items=[],
            settings={},
            sys_path=[],
        )
        if self.request is not None:
            data["request_insecure_uri"] = self.request.path
        return data
