"""Requests the service makes to addresses its users choose (webhooks), signed and fenced.

A URL a user registers must not turn the service into a proxy into its own network: only
``http``/``https`` are allowed, never to the service's own host names, and the request is
refused before any connection when the host resolves to an address that is private,
loopback, link-local, reserved, an IPv6 wrapping of an IPv4 address, or one of this
machine's own, unless ``WEBHOOKS_ALLOW_PRIVATE_ADDRESSES`` is set. Only the addresses
checked are connected to.
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
DEFAULT_PORTS = {"http": 80, "https": 443}


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


# IPv6 prefixes that carry an IPv4 address inside (NAT64, IPv4-compatible, 6to4): a public
# looking address of these can reach a private IPv4 one through a translator.
_EMBEDDING = tuple(
    ipaddress.ip_network(net) for net in ("64:ff9b::/96", "64:ff9b:1::/48", "::/96", "2002::/16")
)


# Ranges Python's ``is_global`` still counts as global: the 6to4 relay anycast (deprecated,
# RFC 7526).
_NOT_GLOBAL = (ipaddress.ip_network("192.88.99.0/24"),)


def _refusal(address: str) -> str | None:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    site_local = isinstance(ip, ipaddress.IPv6Address) and ip.is_site_local
    if (
        not ip.is_global
        or ip.is_multicast
        or ip.is_reserved
        or site_local
        or any(ip in net for net in _NOT_GLOBAL)
    ):
        return f"{ip} is a private, loopback or reserved address"
    if isinstance(ip, ipaddress.IPv6Address) and (
        ip.teredo or any(ip in net for net in _EMBEDDING)
    ):
        return f"{ip} is an IPv6 address that embeds an IPv4 one"
    if str(ip) in _own_addresses():
        return f"{ip} is this service's own address"
    return None


def check_address(address: str) -> None:
    if settings.WEBHOOKS_ALLOW_PRIVATE_ADDRESSES:
        return
    reason = _refusal(address)
    if reason:
        raise RefusedAddress(reason)


def _own_hostname(hostname: str, allowed_hosts: Iterable[str]) -> bool:
    """True for ``localhost``, this machine's name and the names the service answers to."""
    name = hostname.lower().rstrip(".")
    if name in ("localhost", socket.gethostname().lower()) or name.endswith(".localhost"):
        return True
    for host in allowed_hosts:
        host = host.lower()
        if host.startswith("."):
            if name == host[1:] or name.endswith(host):
                return True
        elif host not in ("*", "") and name == host:
            return True
    return False


@dataclass(frozen=True)
class Target:
    scheme: str
    hostname: str
    port: int
    path: str


def _target(url: str) -> Target:
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError as error:
        raise RefusedAddress(f"The port is not valid: {error}.") from None
    if parts.scheme not in ALLOWED_SCHEMES or not parts.hostname:
        raise RefusedAddress("Only http and https URLs with a host are allowed.")
    # Ports below 1024 other than the web's belong to other services (SSH, SMTP, ...).
    if port is not None and (port == 0 or (port < 1024 and port not in (80, 443))):
        raise RefusedAddress("The port must be 80, 443 or from 1024 to 65535.")
    if not settings.WEBHOOKS_ALLOW_PRIVATE_ADDRESSES and _own_hostname(
        parts.hostname, settings.ALLOWED_HOSTS
    ):
        raise RefusedAddress(f"{parts.hostname} is this service's own host.")
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return Target(parts.scheme, parts.hostname, port or DEFAULT_PORTS[parts.scheme], path)


def _addresses(target: Target) -> list[str]:
    """Every address the host resolves to, each checked; refuse if any is fenced off."""
    try:
        # An address written in the URL is checked as it is, resolvable here or not.
        addresses = [str(ipaddress.ip_address(target.hostname))]
    except ValueError:
        infos = socket.getaddrinfo(target.hostname, target.port, type=socket.SOCK_STREAM)
        addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
    for address in addresses:
        check_address(address)
    return addresses


def check_url(url: str) -> None:
    """Refuse a URL that is not http(s), names this service, or resolves to a fenced address.

    Used when a URL is registered; every request checks again, on the addresses it connects to.
    """
    target = _target(url)
    try:
        _addresses(target)
    except (OSError, UnicodeError):
        # Not resolvable now, perhaps not yet: each request resolves and checks again.
        return


def post_json(url: str, body: bytes, headers: dict[str, str], timeout: float) -> Answer:
    """POST ``body`` to ``url`` without following redirects; return the status and a body excerpt.

    The host is resolved once and only the checked addresses are connected to (the name
    still goes in the Host header and TLS), so a name that resolves elsewhere the second
    time cannot slip through. Raises ``RefusedAddress`` for a fenced URL, and ``OSError``
    or ``http.client.HTTPException`` when the request fails on the way.
    """
    target = _target(url)
    addresses = _addresses(target)

    def connect(address: tuple[str, int], *args: Any, **kwargs: Any) -> socket.socket:
        error: OSError | None = None
        for checked in addresses:
            try:
                return socket.create_connection((checked, target.port), *args, **kwargs)
            except OSError as failure:
                error = failure
        raise error or OSError("no address to connect to")

    connection_class = (
        http.client.HTTPSConnection if target.scheme == "https" else http.client.HTTPConnection
    )
    connection = connection_class(target.hostname, target.port, timeout=timeout)
    # http.client opens every connection, plain or TLS, through this attribute.
    connection._create_connection = connect  # type: ignore[attr-defined]
    try:
        connection.request(
            "POST",
            target.path,
            body=body,
            headers={"Content-Type": "application/json", "User-Agent": USER_AGENT, **headers},
        )
        response = connection.getresponse()
        excerpt = response.read(RESPONSE_EXCERPT).decode("utf-8", "replace")
        return Answer(status=response.status, body=excerpt)
    finally:
        connection.close()
