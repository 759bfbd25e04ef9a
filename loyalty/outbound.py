"""Requests the service makes to addresses its users choose (webhooks), signed and fenced.

A URL a user registers must not turn the service into a proxy into its own network: only
``http``/``https`` are allowed, and the connection is refused when the address actually
connected to (checked on the socket, after DNS, so a name that re-resolves cannot slip
through) is private, loopback, link-local, reserved or one of this machine's own, unless
``WEBHOOKS_ALLOW_PRIVATE_ADDRESSES`` is set.
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import ipaddress
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings

ALLOWED_SCHEMES = ("http", "https")
SIGNATURE_VERSION = "v1"
# Enough of a receiver's answer to tell what went wrong, not a whole error page.
RESPONSE_EXCERPT = 1000
USER_AGENT = "members-groups-webhooks/1"


class RefusedAddress(Exception):
    """The URL is not one the service may call."""


@dataclass(frozen=True)
class Answer:
    status: int
    body: str


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The signature header's value: HMAC-SHA256 of ``"<timestamp>." + body``."""
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"{SIGNATURE_VERSION}={digest.hexdigest()}"


@cache
def _own_addresses() -> frozenset[str]:
    try:
        return frozenset(socket.gethostbyname_ex(socket.gethostname())[2])
    except OSError:
        return frozenset()


def _refusal(address: str) -> str | None:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    if not ip.is_global or ip.is_multicast:
        return f"{ip} is a private, loopback or reserved address"
    if str(ip) in _own_addresses():
        return f"{ip} is this service's own address"
    return None


def check_address(address: str) -> None:
    if settings.WEBHOOKS_ALLOW_PRIVATE_ADDRESSES:
        return
    reason = _refusal(address)
    if reason:
        raise RefusedAddress(reason)


def check_url(url: str) -> None:
    """Refuse a URL that is not http(s), names this service, or resolves to a fenced address.

    Used when a URL is registered; every request checks the connected address again.
    """
    parts = urlsplit(url)
    if parts.scheme not in ALLOWED_SCHEMES or not parts.hostname:
        raise RefusedAddress("Only http and https URLs with a host are allowed.")
    if settings.WEBHOOKS_ALLOW_PRIVATE_ADDRESSES:
        return
    if parts.hostname.lower() in _own_hostnames(settings.ALLOWED_HOSTS):
        raise RefusedAddress(f"{parts.hostname} is this service's own host.")
    try:
        infos = socket.getaddrinfo(parts.hostname, parts.port or 443, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        # Not resolvable now, perhaps not yet: each request checks where it connects.
        return
    for info in infos:
        check_address(str(info[4][0]))


def _own_hostnames(allowed_hosts: Iterable[str]) -> set[str]:
    names = {host.lower().lstrip(".") for host in allowed_hosts if host not in ("*", "")}
    return names | {"localhost", socket.gethostname().lower()}


def _fenced_connection(address: tuple[str, int], *args: Any, **kwargs: Any) -> socket.socket:
    """``socket.create_connection`` that checks the peer before a byte is sent."""
    sock = socket.create_connection(address, *args, **kwargs)
    try:
        check_address(sock.getpeername()[0])
    except RefusedAddress:
        sock.close()
        raise
    return sock


def post_json(url: str, body: bytes, headers: dict[str, str], timeout: float) -> Answer:
    """POST ``body`` to ``url`` without following redirects; return the status and a body excerpt.

    Raises ``RefusedAddress`` for a fenced URL and ``OSError``/``http.client.HTTPException``
    when the request fails on the way.
    """
    parts = urlsplit(url)
    if parts.scheme not in ALLOWED_SCHEMES or not parts.hostname:
        raise RefusedAddress("Only http and https URLs with a host are allowed.")
    connection_class = (
        http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    )
    connection = connection_class(parts.hostname, parts.port, timeout=timeout)
    # http.client opens every connection, plain or TLS, through this attribute.
    connection._create_connection = _fenced_connection  # type: ignore[attr-defined]
    path = parts.path or "/"
    if parts.query:
        path = f"{path}?{parts.query}"
    try:
        connection.request(
            "POST",
            path,
            body=body,
            headers={"Content-Type": "application/json", "User-Agent": USER_AGENT, **headers},
        )
        response = connection.getresponse()
        excerpt = response.read(RESPONSE_EXCERPT).decode("utf-8", "replace")
        return Answer(status=response.status, body=excerpt)
    finally:
        connection.close()
