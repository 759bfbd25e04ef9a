"""Abuse limits against a real server process: huge bodies are refused before they are read.

The server is ``manage.py runserver --noreload`` (one process) on its own SQLite file, so
its memory can be read from /proc while a 10,000,000-identifier body (about 240 MB of
JSON, generated lazily) is thrown at the bulk add endpoint.
"""

from __future__ import annotations

import json
import os
import select
import socket
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import manage_process, runserver

IDENTIFIERS = 10_000_000
CHUNK = 1 << 20
RSS_GROWTH_MAX = 50 * 1024 * 1024


def rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


HEAD = b'{"identifier_type": "email", "identifiers": ["last@example.com"'
ITEM = b', "member%08d@example.com"'
TAIL = b"]}"
BODY_LENGTH = len(HEAD) + (IDENTIFIERS - 1) * len(ITEM % 0) + len(TAIL)


def huge_body() -> Iterator[bytes]:
    """The JSON of a bulk add of IDENTIFIERS emails, a megabyte at a time."""
    chunk = bytearray(HEAD)
    for n in range(1, IDENTIFIERS):
        chunk += ITEM % n
        if len(chunk) >= CHUNK:
            yield bytes(chunk)
            chunk.clear()
    yield bytes(chunk) + TAIL


class Server:
    def __init__(self, port: int, token: str) -> None:
        self.port = port
        self.token = token

    def head(self, method: str, path: str, extra: str) -> bytes:
        return (
            f"{method} /v3/lim/{path} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"X-Client-Authorization: {self.token}\r\nX-User-Agent: tests/1.0\r\n"
            f"X-Product-Name: limits\r\nContent-Type: application/json\r\n{extra}\r\n"
        ).encode()

    def send(self, head: bytes, body: Iterator[bytes]) -> tuple[int, dict[str, object], int]:
        """Send the head, then the body until the server answers; return the status, the
        JSON body of the answer and how many body bytes went out."""
        sent = 0
        with socket.create_connection(("127.0.0.1", self.port), timeout=60) as sock:
            sock.sendall(head)
            for piece in body:
                if select.select([sock], [], [], 0)[0]:
                    break  # answered already
                try:
                    sock.sendall(piece)
                except (BrokenPipeError, ConnectionResetError):
                    break
                sent += len(piece)
            reply = b""
            while b"}" not in reply.partition(b"\r\n\r\n")[2]:
                data = sock.recv(65536)
                if not data:
                    break
                reply += data
        head, _, payload = reply.partition(b"\r\n\r\n")
        lines = head.decode().split("\r\n")
        headers = dict(line.lower().split(": ", 1) for line in lines[1:])
        # Only the answer's own bytes: the server may go on to read the rest as a request.
        payload = payload[: int(headers["content-length"])]
        return int(lines[0].split()[1]), json.loads(payload), sent


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, int]]:
    database = tmp_path_factory.mktemp("limits") / "db.sqlite3"
    env = {
        **os.environ,
        "DATABASE_URL": f"sqlite:///{database}",
        "CACHE_URL": "locmemcache://",
        "DEBUG": "false",
    }
    manage_process(env, "migrate", "-v0")
    manage_process(env, "create_club", "lim", "--name", "Limits")
    token = (
        manage_process(env, "create_api_token", "lim", "--permits", "all").strip().splitlines()[-1]
    )
    with runserver(env) as (port, pid):
        yield Server(port, token), pid


def make_group(server: Server) -> int:
    body = b'{"name": "Target"}'
    status, payload, _ = server.send(
        server.head("POST", "members_groups", f"Content-Length: {len(body)}\r\n"), iter([body])
    )
    assert status == 201
    return int(payload["id"])  # type: ignore[call-overload]


def test_a_10_million_identifier_body_is_413_unread_and_the_server_memory_stays_flat(
    server: tuple[Server, int], capsys: pytest.CaptureFixture[str]
) -> None:
    api, pid = server
    group = make_group(api)
    before = rss(pid)

    status, payload, sent = api.send(
        api.head("POST", f"members_groups/{group}/members", f"Content-Length: {BODY_LENGTH}\r\n"),
        huge_body(),
    )

    growth = rss(pid) - before
    assert status == 413
    assert payload == {"error": "The request body is larger than 16777216 bytes."}
    assert sent < BODY_LENGTH // 10  # refused on its Content-Length, not read
    assert growth < RSS_GROWTH_MAX
    report(capsys, f"413 after {sent} of {BODY_LENGTH} bytes; server RSS grew {growth} bytes")


def test_a_chunked_body_without_content_length_is_411_unread(
    server: tuple[Server, int], capsys: pytest.CaptureFixture[str]
) -> None:
    api, pid = server
    group = make_group(api)
    before = rss(pid)

    def chunked() -> Iterator[bytes]:
        for piece in huge_body():
            yield b"%x\r\n%s\r\n" % (len(piece), piece)
        yield b"0\r\n\r\n"

    status, payload, sent = api.send(
        api.head("POST", f"members_groups/{group}/members", "Transfer-Encoding: chunked\r\n"),
        chunked(),
    )

    growth = rss(pid) - before
    assert status == 411
    assert payload == {"error": "A request body must be sent with a Content-Length header."}
    assert sent < BODY_LENGTH // 10
    assert growth < RSS_GROWTH_MAX
    report(capsys, f"411 after {sent} bytes of a chunked body; server RSS grew {growth} bytes")


def report(capsys: pytest.CaptureFixture[str], line: str) -> None:
    with capsys.disabled():
        sys.stdout.write(f"\n{line}\n")
