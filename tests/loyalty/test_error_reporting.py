"""Error reports: Sentry events (when SENTRY_DSN is set) and the ADMINS' emails carry the
error, its request id and club, and none of the member data the request or the database
held."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
import sentry_sdk
from django.core import mail
from django.http import HttpRequest, HttpResponse
from django.test import Client
from django.urls import path
from sentry_sdk.envelope import Envelope
from sentry_sdk.transport import Transport

from loyalty.reporting import init_sentry, scrub_event
from members.models import Member
from tests.factories import MemberFactory

pytestmark = pytest.mark.django_db


def _failing_view(request: HttpRequest, loyalty_club_slug: str) -> HttpResponse:
    raise RuntimeError("boom")


def _duplicate_view(request: HttpRequest, loyalty_club_slug: str) -> HttpResponse:
    # Behind the services' back, so that the database itself refuses (its message quotes the
    # row on PostgreSQL).
    existing = Member.objects.get(email=EMAIL)
    Member.objects.create(club_id=existing.club_id, email=EMAIL)
    return HttpResponse()


urlpatterns = [
    path("v3/<slug:loyalty_club_slug>/failing", _failing_view),
    path("v3/<slug:loyalty_club_slug>/duplicate", _duplicate_view),
]
handler500 = "loyalty.api.error_responses.server_error"


# Far from the views: events carry a few lines of source around each frame.
EMAIL = "ann.secret@example.com"


class Captured(Transport):
    """A Sentry transport that keeps the events instead of sending them."""

    def __init__(self) -> None:
        super().__init__()
        self.events: list[dict[str, Any]] = []

    def capture_envelope(self, envelope: Envelope) -> None:
        self.events.extend(item.payload.json for item in envelope.items if item.type == "event")


@pytest.fixture
def sentry(settings: Any) -> Iterator[Captured]:
    settings.ROOT_URLCONF = __name__
    transport = Captured()
    init_sentry(
        "https://public@sentry.example.com/1",
        environment="test",
        release="r1",
        transport=transport,
    )
    try:
        yield transport
    finally:
        sentry_sdk.get_client().close()
        sentry_sdk.init()


def send_member_data(path: str) -> HttpResponse:
    client = Client(raise_request_exception=False)
    client.cookies["sessionid"] = "session-secret"
    return client.post(
        f"{path}?email={EMAIL}",
        data=json.dumps({"email": EMAIL, "properties": {"first_name": "Ann"}}),
        content_type="application/json",
        HTTP_X_REQUEST_ID="req-42",
        HTTP_X_CLIENT_AUTHORIZATION="token-secret",
    )


def test_an_error_reaches_sentry_with_its_request_id_and_club_but_no_member_data(
    sentry: Captured,
) -> None:
    response = send_member_data("/v3/red-club/failing")

    assert response.status_code == 500
    [event] = sentry.events
    assert event["exception"]["values"][-1]["type"] == "RuntimeError"
    assert event["exception"]["values"][-1]["value"] == "boom"
    assert event["tags"]["request_id"] == "req-42"
    assert event["tags"]["club"] == "red-club"
    assert event["environment"] == "test"
    assert event["transaction"] == "/v3/{loyalty_club_slug}/failing"
    sent = json.dumps(event)
    for secret in (EMAIL, "Ann", "token-secret", "session-secret"):
        assert secret not in sent
    assert "user" not in event


def test_a_database_errors_message_quoting_a_member_is_not_sent(
    sentry: Captured, club: Any
) -> None:
    MemberFactory(club=club, email=EMAIL)

    response = send_member_data(f"/v3/{club.slug}/duplicate")

    assert response.status_code == 500
    [event] = sentry.events
    assert event["exception"]["values"][-1]["type"] == "IntegrityError"
    assert EMAIL not in json.dumps(event)


def test_the_scrubber_strips_what_a_served_request_carries() -> None:
    """The request as the WSGI integration records it under gunicorn (the test client has no
    WSGI environ to record)."""
    event: Any = {
        "request": {
            "url": f"https://members.example.com/v3/red-club/members?email={EMAIL}",
            "method": "POST",
            "query_string": f"email={EMAIL}",
            "data": {"email": EMAIL},
            "cookies": {"sessionid": "session-secret"},
            "env": {"REMOTE_ADDR": "198.51.100.7"},
            "headers": {
                "Host": "members.example.com",
                "X-Client-Authorization": "token-secret",
                "X-Request-ID": "req-42",
                "Referer": f"https://crm.example.com/?q={EMAIL}",
            },
        },
        "exception": {
            "values": [
                {"type": "UniqueViolation", "module": "psycopg.errors", "value": EMAIL},
                {"type": "ValueError", "module": None, "value": "kept"},
            ]
        },
    }

    scrubbed = scrub_event(event, {})

    assert scrubbed["request"] == {
        "url": "https://members.example.com/v3/red-club/members",
        "method": "POST",
        "headers": {"Host": "members.example.com", "X-Request-ID": "req-42"},
    }
    assert [e["value"] for e in scrubbed["exception"]["values"]] == [
        "(the database's message is not sent: it may quote a row)",
        "kept",
    ]


def test_the_admins_are_mailed_the_traceback_without_the_requests_data(settings: Any) -> None:
    settings.ROOT_URLCONF = __name__
    settings.ADMINS = [("Ops", "ops@example.com")]

    response = send_member_data("/v3/red-club/failing")

    assert response.status_code == 500
    [email] = mail.outbox
    assert email.to == ["ops@example.com"]
    assert "Internal Server Error: /v3/red-club/failing" in email.subject
    assert "RuntimeError at /v3/red-club/failing\nboom" in email.body
    assert 'raise RuntimeError("boom")' in email.body
    for secret in (EMAIL, "token-secret", "session-secret"):
        assert secret not in email.body
    assert not email.alternatives


def test_without_admins_no_email_is_sent(settings: Any) -> None:
    settings.ROOT_URLCONF = __name__
    settings.ADMINS = []

    assert send_member_data("/v3/red-club/failing").status_code == 500
    assert mail.outbox == []
