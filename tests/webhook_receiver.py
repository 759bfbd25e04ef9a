"""A local HTTP receiver of webhooks, as a fixture: records every POST, answers as told.

Loaded for every test module by tests/conftest.py.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes
    status: int

    @property
    def events(self) -> list[dict[str, Any]]:
        events: list[dict[str, Any]] = json.loads(self.body)["events"]
        return events


@dataclass
class Receiver:
    """A local HTTP server that records every POST and answers with ``answer(request)``."""

    url: str = ""
    requests: list[Received] = field(default_factory=list)
    answer: Callable[[Received], int] = lambda request: 200
    reply: bytes = b"thanks"

    def accepted(self, path: str = "") -> list[Received]:
        return [r for r in self.requests if r.status == 200 and r.headers["Path"] == path]


@pytest.fixture
def receiver(settings: Any) -> Iterator[Receiver]:
    settings.WEBHOOKS_ALLOW_PRIVATE_ADDRESSES = True
    state = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            request = Received({**self.headers, "Path": self.path}, body, 0)
            request.status = state.answer(request)
            state.requests.append(request)
            self.send_response(request.status)
            self.end_headers()
            self.wfile.write(state.reply if request.status == 200 else b"not now")

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    yield state
    server.shutdown()
    server.server_close()


def signature_verifies(secret: str, request: Received) -> bool:
    """What a receiver does: HMAC-SHA256 of "<timestamp>." + body under the shared secret."""
    timestamp = request.headers["X-Webhook-Timestamp"]
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + request.body, hashlib.sha256)
    return hmac.compare_digest(request.headers["X-Webhook-Signature"], f"v1={digest.hexdigest()}")
