"""The health endpoint load balancers and orchestrators probe: is the database answering?"""

from __future__ import annotations

from django.db import DatabaseError, connection
from django.http import HttpRequest, HttpResponse

from loyalty.exceptions import (
    DATABASE_UNAVAILABLE,
    database_fault,
    error_body,
    service_unavailable,
)
from loyalty.renderers import json_response


def healthz(request: HttpRequest) -> HttpResponse:
    """200 ``{"status": "ok"}`` once a trivial query answers, else 503 in the error format."""
    if request.method not in ("GET", "HEAD"):
        response = json_response(error_body("Method not allowed"), status=405)
        response["Allow"] = "GET, HEAD"
        return response
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except DatabaseError as exc:
        return service_unavailable(database_fault(exc) or DATABASE_UNAVAILABLE)
    return json_response({"status": "ok"})
