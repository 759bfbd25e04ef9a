"""A task queue that refuses work after a write has committed (the RQ backend with its Redis
down) fails no request: the refusal is logged and reported, and the scheduler's sweeps do
the pending work once the queue is back."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest
import sentry_sdk
import time_machine
from django.utils import timezone
from sentry_sdk.envelope import Envelope
from sentry_sdk.transport import Transport

from groups.models import MembersGroup
from groups.webhooks.models import DeliveryStatus, WebhookDelivery
from loyalty.models import Club
from loyalty.reporting import init_sentry
from members.models import ImportStatus, Member, MemberImport
from tests.api_fixtures import ClubClient
from tests.factories import GroupFactory, MemberFactory, WebhookEndpointFactory
from tests.helpers import command_output, cond
from tests.webhook_receiver import Receiver

pytestmark = pytest.mark.django_db

# Nothing listens on port 1: every enqueue is refused at once.
REDIS_DOWN = "redis://127.0.0.1:1/0"
IMMEDIATE = {"default": {"BACKEND": "django_tasks.backends.immediate.ImmediateBackend"}}


class Captured(Transport):
    """A Sentry transport that keeps the events' exception types instead of sending them."""

    def __init__(self) -> None:
        super().__init__()
        self.errors: list[str] = []

    def capture_envelope(self, envelope: Envelope) -> None:
        for item in envelope.items:
            if item.type == "event":
                self.errors.append(item.payload.json["exception"]["values"][-1]["type"])


@pytest.fixture
def queue_down(
    settings: Any, caplog: pytest.LogCaptureFixture, django_capture_on_commit_callbacks: Any
) -> Iterator[Callable[..., Any]]:
    """Send a request with the RQ backend's Redis down and run its after-commit callbacks;
    the queue is back (the ImmediateBackend) once it has answered."""
    transport = Captured()
    init_sentry(
        "https://public@sentry.example.com/1", environment="test", release=None, transport=transport
    )

    def send(client: ClubClient, method: str, path: str, data: Any) -> Any:
        settings.TASKS = {
            "default": {"BACKEND": "django_tasks_rq.RQBackend", "QUEUES": ["default"]}
        }
        settings.RQ_QUEUES = {"default": {"URL": REDIS_DOWN}}
        try:
            with django_capture_on_commit_callbacks(execute=True) as callbacks:
                response = getattr(client, method)(path, data, format="json")
        finally:
            settings.TASKS = IMMEDIATE
        assert len(callbacks) == 1
        warnings = [r for r in caplog.records if r.name == "loyalty.background"]
        assert [r.levelname for r in warnings] == ["WARNING"]
        assert "Could not enqueue" in warnings[0].getMessage()
        sentry_sdk.flush()
        assert transport.errors == ["ConnectionError"]
        return response

    try:
        yield send
    finally:
        sentry_sdk.get_client().close()
        sentry_sdk.init()


def test_a_background_recomputation_is_swept_up(
    api: ClubClient, club: Club, settings: Any, queue_down: Callable[..., Any]
) -> None:
    settings.RECOMPUTE_INLINE_MAX = 0
    MemberFactory(club=club, properties={"points": 9})
    rule = [cond("number", "points", "gte", 5)]

    response = queue_down(
        api, "post", "members_groups", {"name": "High", "audience_conditions": rule}
    )

    assert response.status_code == 201, response.content
    group = MembersGroup.objects.get(pk=response.json()["id"])
    assert (group.recomputing, group.members_count) == (True, 0)
    later = timezone.now() + timedelta(seconds=settings.RECOMPUTE_STALE_SECONDS + 1)
    with time_machine.travel(later, tick=False):
        output = command_output("run_scheduler", "--run", "resume-stalled-work")
    assert "1 recomputation(s)" in output
    group.refresh_from_db()
    assert (group.recomputing, group.members_count) == (False, 1)


def test_a_webhook_delivery_is_swept_up(
    api: ClubClient, club: Club, receiver: Receiver, queue_down: Callable[..., Any]
) -> None:
    WebhookEndpointFactory(club=club, url=receiver.url)
    group = GroupFactory(club=club)
    member = MemberFactory(club=club)
    WebhookDelivery.objects.all().delete()
    receiver.requests.clear()
    payload = {"identifier_type": "id", "identifiers": [str(member.pk)]}

    response = queue_down(api, "post", f"members_groups/{group.pk}/members", payload)

    assert response.status_code == 200, response.content
    delivery = WebhookDelivery.objects.get()
    assert delivery.status == DeliveryStatus.PENDING
    assert receiver.requests == []
    command_output("run_scheduler", "--run", "send-webhooks")
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.DELIVERED
    assert len(receiver.requests) == 1


def test_an_api_member_import_is_swept_up(
    api: ClubClient, club: Club, settings: Any, queue_down: Callable[..., Any]
) -> None:
    payload = {
        "import_id": "crm-1",
        "operation": "create",
        "member_identifier_type": "email",
        "multi_values_update_mode": "replace",
        "members": [{"email": "ann@example.com"}],
    }

    response = queue_down(api, "post", "members/imports", payload)

    assert response.status_code == 202, response.content
    assert MemberImport.objects.get().status == ImportStatus.QUEUED
    later = timezone.now() + timedelta(seconds=settings.MEMBER_IMPORT_STALE_SECONDS + 1)
    with time_machine.travel(later, tick=False):
        output = command_output("run_scheduler", "--run", "resume-stalled-work")
    assert "1 import(s)" in output
    assert MemberImport.objects.get().status == ImportStatus.DONE
    assert Member.objects.filter(club=club, email="ann@example.com").exists()
