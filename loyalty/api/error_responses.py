"""The API's one error format: the DRF exception handler and JSON 400/404/500/503 views.

Every error body is ``error_body`` written by ``loyalty.api.renderers.json_bytes``: DRF's
responses through the API's renderer, Django's handlers through ``json_response``.
"""

from __future__ import annotations

import logging
import math
import sys
from collections.abc import Mapping
from typing import Any

from django.conf import settings
from django.core import signals
from django.core.exceptions import (
    BadRequest,
    DisallowedHost,
    PermissionDenied,
    RequestDataTooBig,
    SuspiciousOperation,
    TooManyFieldsSent,
)
from django.db import DatabaseError, OperationalError
from django.http import Http404, HttpRequest, HttpResponse
from django.http.multipartparser import MultiPartParserError
from django.utils.log import log_response
from django.views import defaults
from rest_framework import exceptions, serializers
from rest_framework.response import Response
from rest_framework.views import set_rollback

from loyalty.api.renderers import json_response
from loyalty.errors import DomainError

API_PREFIX = "/v3/"
NOT_FOUND = "Not found"
INTERNAL_ERROR = "Internal server error"
INVALID_PARAMETERS = "Invalid parameters"
INVALID_HOST = "Invalid Host header."

# DRF's codes for a value of the wrong JSON type, in JSON's own words.
CODE_NAMES = {"not_a_list": "not_an_array", "not_a_dict": "not_an_object"}
# Codes whose limit is an attribute of the same name on the failing field.
COUNTED_CODES = ("max_length", "min_length", "max_value", "min_value")

EMPTY_BODY = "The body is empty: it must be a JSON object."

REASON_PHRASES = {470: "Missing Client Header", 471: "Malformed Client Header"}

# Database errors a client may retry, by SQLSTATE (or its two-letter class): answered 503
# with Retry-After instead of a 500.
DATABASE_BUSY = "The database is busy: try again later."
DATABASE_UNAVAILABLE = "The database is unavailable: try again later."
RETRYABLE_SQLSTATES = {
    "57014": "The request took longer than the database allows: try again later.",
    "55P03": "The data is locked by another operation: try again later.",
    "40P01": DATABASE_BUSY,  # deadlock detected
    "40001": DATABASE_BUSY,  # serialization failure
    "08": DATABASE_UNAVAILABLE,  # connection exceptions
    "53": DATABASE_UNAVAILABLE,  # insufficient resources (too many connections)
    "57P01": DATABASE_UNAVAILABLE,  # the server is shutting down or restarting
    "57P02": DATABASE_UNAVAILABLE,
    "57P03": DATABASE_UNAVAILABLE,
}
RETRY_AFTER_SECONDS = 5

logger = logging.getLogger(__name__)


class LengthRequired(exceptions.APIException):
    """A chunked body: its size is unknown until it is all read, so it is refused unread."""

    status_code = 411
    default_detail = "A request body must be sent with a Content-Length header."
    default_code = "length_required"


def _options(code: str, field: Any) -> dict[str, Any]:
    if code in COUNTED_CODES and getattr(field, code, None) is not None:
        return {"count": getattr(field, code)}
    if code == "invalid_choice" and hasattr(field, "choices"):
        return {"choices": list(field.choices)}
    return {}


def _child(field: Any, key: Any) -> Any:
    if isinstance(field, serializers.Serializer):
        return field.fields.get(key)
    return getattr(field, "child", None)  # ListField, DictField, ListSerializer


def validation_details(errors: Any, field: Any = None) -> Any:
    """Turn DRF's error structure into the SPEC's details tree.

    Objects stay objects, array elements are keyed by their index as a string, and each
    leaf becomes a list of ``{"error": code, "options": {...}}``. ``field`` is the
    serializer (or field) that produced ``errors``; its limits fill the options, e.g.
    ``{"count": 200}`` for ``max_length``.
    """
    if isinstance(errors, Mapping):
        return {
            str(key): validation_details(value, _child(field, key)) for key, value in errors.items()
        }
    if isinstance(errors, list) and errors and not isinstance(errors[0], str):
        # A ListSerializer: one entry per element, empty for the valid ones.
        return {
            str(index): validation_details(error, _child(field, index))
            for index, error in enumerate(errors)
            if error
        }
    leaves = errors if isinstance(errors, list) else [errors]
    details = []
    for leaf in leaves:
        code = str(getattr(leaf, "code", None) or "invalid")
        details.append({"error": CODE_NAMES.get(code, code), "options": _options(code, field)})
    return details


def error_body(message: str, details: Any = None) -> dict[str, Any]:
    return {"error": message} if details is None else {"error": message, "details": details}


def _message(detail: Any) -> str:
    return str(detail) if isinstance(detail, str) else INVALID_PARAMETERS


def database_fault(exc: BaseException | None) -> str | None:
    """The message for a database error worth retrying (timeouts, locks, outages), or None."""
    if not isinstance(exc, DatabaseError):
        return None
    cause = exc.__cause__
    sqlstate = getattr(cause, "sqlstate", None)
    if sqlstate is None:
        # The driver's errors without a server answer: the connection failed or was lost.
        # SQLite has no SQLSTATE and one retryable error, a write lock held past the timeout.
        if type(cause).__module__.startswith("psycopg") and isinstance(exc, OperationalError):
            return DATABASE_UNAVAILABLE
        if "database is locked" in str(exc):
            return RETRYABLE_SQLSTATES["55P03"]
        return None
    message = RETRYABLE_SQLSTATES.get(sqlstate) or RETRYABLE_SQLSTATES.get(sqlstate[:2])
    if message is not None:
        logger.warning("Database fault %s answered 503: %s", sqlstate, str(exc).strip())
    return message


def service_unavailable(message: str) -> HttpResponse:
    """A 503 in the error format, outside DRF (Django's handlers, middleware, health)."""
    response = json_response(error_body(message), status=503)
    response["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return response


def api_exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """Render a refusal as ``{"error": ...}`` (422 adds ``details``); None lets a 500 through."""
    if (fault := database_fault(exc)) is not None:
        response = Response(error_body(fault), status=503)
        response["Retry-After"] = str(RETRY_AFTER_SECONDS)
    elif isinstance(exc, DomainError):
        response = Response(error_body(exc.message, exc.details), status=exc.status)
    elif isinstance(exc, Http404 | exceptions.NotFound):
        response = Response(error_body(NOT_FOUND), status=404)
    elif isinstance(exc, PermissionDenied):
        response = Response(error_body(str(exc) or "Forbidden"), status=403)
    elif isinstance(exc, RequestDataTooBig):
        # Raised by Django when the parser reads a body over DATA_UPLOAD_MAX_MEMORY_SIZE.
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        response = Response(error_body(f"The request body is larger than {limit} bytes."), 413)
    elif isinstance(exc, exceptions.ValidationError):
        response = Response(
            error_body(INVALID_PARAMETERS, validation_details(exc.detail)), status=422
        )
    elif isinstance(exc, exceptions.UnsupportedMediaType):
        # SPEC: a body that is not JSON is a 400, whatever its declared type.
        response = Response(error_body(f"The body must be JSON. {exc.detail}"), status=400)
    elif isinstance(exc, exceptions.APIException):
        response = Response(error_body(_message(exc.detail)), status=exc.status_code)
        auth_header = getattr(exc, "auth_header", None)
        if auth_header:
            response["WWW-Authenticate"] = auth_header
        wait = getattr(exc, "wait", None)
        if wait is not None:
            response["Retry-After"] = str(math.ceil(wait))
    else:
        return None
    if response.status_code in REASON_PHRASES:
        response.reason_phrase = REASON_PHRASES[response.status_code]
    set_rollback()
    return response


def bad_request(request: HttpRequest, exception: Exception) -> HttpResponse:
    """Django's 400 view, for its refusals outside DRF (a SuspiciousOperation, such as too
    many query parameters or a Host not in ALLOWED_HOSTS): JSON under /v3/, the usual page
    elsewhere."""
    if not request.path.startswith(API_PREFIX):
        return defaults.bad_request(request, exception)
    if isinstance(exception, TooManyFieldsSent):
        limit = settings.DATA_UPLOAD_MAX_NUMBER_FIELDS
        message = f"Too many query parameters (at most {limit})."
    elif isinstance(exception, DisallowedHost):
        message = INVALID_HOST
    else:
        # Django's messages for the others name settings and internals: not for clients.
        message = "Bad request"
    return json_response(error_body(message), status=400)


def not_found(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    """Django's 404 view: JSON under /v3/, the usual page elsewhere."""
    if request.path.startswith(API_PREFIX):
        return json_response(error_body(NOT_FOUND), status=404)
    return defaults.page_not_found(request, exception or Http404())


def server_error(request: HttpRequest) -> HttpResponse:
    """Django's 500 view: JSON without a traceback under /v3/, the usual page elsewhere.

    A retryable database fault (see ``database_fault``) is a JSON 503 on every path.
    """
    if (fault := database_fault(sys.exception())) is not None:
        return service_unavailable(fault)
    if request.path.startswith(API_PREFIX):
        return json_response(error_body(INTERNAL_ERROR), status=500)
    return defaults.server_error(request)


def suspicious_request(request: HttpRequest, exc: SuspiciousOperation) -> HttpResponse:
    """The 400 for a request Django finds suspicious (too many fields, a bad Host), logged
    to Django's security logger as Django logs it."""
    if isinstance(exc, RequestDataTooBig | TooManyFieldsSent):
        # The body cannot be read again: a second read would raise the same error.
        request._mark_post_parse_error()  # type: ignore[attr-defined]
    response = bad_request(request, exc)
    log_response(
        str(exc),
        exception=exc,
        request=request,
        response=response,
        level="error",
        logger=logging.getLogger(f"django.security.{type(exc).__name__}"),
    )
    return response


def api_response_for_exception(request: HttpRequest, exc: Exception) -> HttpResponse | None:
    """What the views above answer for an exception under /v3/, logged and signalled as
    Django's own handling does; for the DEBUG mode, where Django answers with its debug
    pages instead of calling them. None for what Django answers alike in both modes.

    Called inside the ``except`` block that caught ``exc`` (``server_error`` reads it).
    """
    if isinstance(exc, Http404):
        return not_found(request, exc)
    if isinstance(exc, BadRequest):
        response = bad_request(request, exc)
        log_response(
            "%s: %s", str(exc), request.path, response=response, request=request, exception=exc
        )
        return response
    if isinstance(exc, SuspiciousOperation):
        return suspicious_request(request, exc)
    if isinstance(exc, PermissionDenied | MultiPartParserError):
        return None
    # Error reports (Sentry, the ADMINS' email) hear of it as of any unhandled error.
    signals.got_request_exception.send(sender=None, request=request)
    response = server_error(request)
    log_response(
        "%s: %s",
        response.reason_phrase,
        request.path,
        response=response,
        request=request,
        exception=exc,
    )
    return response


class ErrorSerializer(serializers.Serializer[Any]):
    """The body of every error response."""

    error = serializers.CharField(help_text="A human readable message.")


class InvalidParametersSerializer(ErrorSerializer):
    """The body of a 422: the message and a tree of problems shaped like the input."""

    details = serializers.DictField(
        help_text="Shaped like the payload (array elements keyed by their index as a "
        'string); each leaf is a list of {"error": "<code>", "options": {...}}, e.g. '
        '{"name": [{"error": "max_length", "options": {"count": 200}}]}.'
    )
