"""The fence of outgoing requests: no private, loopback or own address is ever called."""

from __future__ import annotations

import socket
from typing import Any

import pytest

from groups.webhooks import outbound
from groups.webhooks.models import DeliveryStatus, WebhookDelivery
from loyalty.models import Club
from tests.factories import MemberFactory, WebhookEndpointFactory
from tests.webhook_receiver import Receiver

pytestmark = pytest.mark.django_db


def test_an_endpoint_on_a_private_address_is_refused_unless_allowed(
    club: Club, receiver: Receiver, settings: Any, django_capture_on_commit_callbacks: Any
) -> None:
    settings.WEBHOOKS_ALLOW_PRIVATE_ADDRESSES = False
    # Registered before the rule, or through a name that now resolves to a private address.
    WebhookEndpointFactory(club=club, url=receiver.url.replace("127.0.0.1", "localhost"))

    with django_capture_on_commit_callbacks(execute=True):
        MemberFactory(club=club)

    delivery = WebhookDelivery.objects.get()
    assert receiver.requests == []
    assert delivery.status == DeliveryStatus.FAILED
    assert delivery.error == "Refused: localhost is this service's own host."


@pytest.mark.parametrize(
    "url",
    [
        "http://0.0.0.0/hooks",
        "http://2130706433/hooks",
        "http://169.254.169.254/latest/meta-data",
        "http://[::ffff:127.0.0.1]/hooks",
        "http://[64:ff9b::a9fe:a9fe]/hooks",
        "http://[2002:7f00:1::]/hooks",
        "http://[fd00::1]/hooks",
        "https://example.com:99999/hooks",
        "http://printer.localhost/hooks",
        "http://[fec0::1]/hooks",
        "http://[4000::1]/hooks",
        "http://192.88.99.1/hooks",
        "https://example.com:0/hooks",
        "https://example.com:22/hooks",
        "http://example.com:25/hooks",
    ],
)
def test_urls_into_private_networks_are_refused(url: str, settings: Any) -> None:
    settings.WEBHOOKS_ALLOW_PRIVATE_ADDRESSES = False

    with pytest.raises(outbound.RefusedAddress):
        outbound.check_url(url)
    with pytest.raises(outbound.RefusedAddress):
        outbound.post_json(url, b"{}", {}, timeout=1)


def test_a_refused_address_is_never_connected_to(settings: Any) -> None:
    settings.WEBHOOKS_ALLOW_PRIVATE_ADDRESSES = False
    with socket.socket() as listener:
        listener.bind(("127.0.0.2", 0))
        listener.listen()
        listener.settimeout(0.3)
        port = listener.getsockname()[1]

        with pytest.raises(outbound.RefusedAddress, match=r"127\.0\.0\.2 is a private"):
            outbound.post_json(f"http://127.0.0.2:{port}/hooks", b"{}", {}, timeout=1)
        with pytest.raises(TimeoutError):
            listener.accept()
