"""JSON only, written one way: every JSON answer under /v3/, DRF's and Django's alike.

The API has one renderer, and its content negotiation picks it whatever ``Accept`` or
``?format=`` ask (a client whose HTTP library prefers HTML still gets JSON). The views
outside DRF (Django's 400, 404 and 500 handlers, health) write their bodies with
``json_response``, through the same ``json_bytes``: one status, one body, byte for byte.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from django.http import HttpResponse
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.renderers import BaseRenderer, JSONRenderer
from rest_framework.request import Request

JSON_CONTENT_TYPE = "application/json"


def json_bytes(data: Any) -> bytes:
    """``data`` as the API writes JSON: compact, UTF-8, no NaN or Infinity.

    U+2028 and U+2029 are escaped, as DRF's renderer does, so that the text is also valid
    JavaScript.
    """
    text = json.dumps(
        data,
        cls=JSONRenderer.encoder_class,  # DRF's: dates, decimals, lazy strings
        ensure_ascii=False,
        allow_nan=False,
        separators=(",", ":"),
    )
    return text.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029").encode()


def json_response(data: Any, status: int = 200) -> HttpResponse:
    """A JSON answer outside DRF, written exactly as the API's renderer writes it."""
    return HttpResponse(json_bytes(data), status=status, content_type=JSON_CONTENT_TYPE)


class ApiJSONRenderer(JSONRenderer):
    """DRF's JSON renderer without its variations (``Accept: ...; indent=4``)."""

    def render(
        self,
        data: Any,
        accepted_media_type: str | None = None,
        renderer_context: Mapping[str, Any] | None = None,
    ) -> bytes:
        return b"" if data is None else json_bytes(data)


class JSONOnly(DefaultContentNegotiation):
    """The view's first renderer, whatever the request asks: never a 406, never HTML.

    Under /v3/ that is the JSON renderer; the schema view's is its JSON one, the docs' their
    HTML page (their only renderer).
    """

    def select_renderer(
        self, request: Request, renderers: Iterable[BaseRenderer], format_suffix: str | None = None
    ) -> tuple[BaseRenderer, str]:
        renderer = next(iter(renderers))
        return renderer, renderer.media_type
