"""Issue 8: what webhooks cost a bulk change, and how fast deliveries are sent.

Run by ``python -m bench --only webhooks``, in ``manage.py shell`` against the bench
database: a club of 100,000 members, bulk-added to a manual group and removed again, with
no endpoint and with one; then the deliveries sent to a local receiver by the
``send_webhooks`` command, beside the same bodies posted by hand.
"""

from __future__ import annotations

import http.client
import statistics
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from io import StringIO
from typing import Any

from django.conf import settings
from django.core.management import call_command
from django.db import transaction

from bench.harness import median_seconds, report
from groups import services
from groups.models import MembersGroup
from groups.webhooks.models import WebhookDelivery, WebhookEndpoint
from groups.webhooks.sending import body_of
from loyalty.models import Club
from loyalty.services import create_club
from members.models import Member
from members.services import bulk_create_members

SLUG = "webhook-bench"
MEMBERS = 100_000


class Sink(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


def club_and_group() -> tuple[Club, MembersGroup, list[int]]:
    club = Club.objects.filter(slug=SLUG).first() or create_club(slug=SLUG, name="Webhook bench")
    ids = list(Member.objects.filter(club=club).order_by("pk").values_list("pk", flat=True))
    if len(ids) < MEMBERS:
        bulk_create_members(
            club=club,
            members=[Member(email=f"w{n}@webhook.bench") for n in range(len(ids), MEMBERS)],
            source="import",
        )
        ids = list(Member.objects.filter(club=club).order_by("pk").values_list("pk", flat=True))
    group = MembersGroup.objects.filter(club=club, name="bulk").first() or services.create_group(
        club=club, name="bulk"
    )
    return club, group, ids


def main() -> None:
    settings.WEBHOOKS_ALLOW_PRIVATE_ADDRESSES = True
    # Deliveries are sent below, by the command, not by a worker.
    settings.TASKS = {"default": {"BACKEND": "django_tasks.backends.dummy.DummyBackend"}}
    server = ThreadingHTTPServer(("127.0.0.1", 0), Sink)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/hooks"
    club, group, ids = club_and_group()
    WebhookEndpoint.objects.filter(club=club).delete()
    print(f"club {SLUG}: {len(ids):,} members; bulk add and remove of all of them")

    def add() -> None:
        with transaction.atomic():
            services.add_member_ids(group=group, member_ids=ids, source="api")

    def remove() -> None:
        with transaction.atomic():
            services.remove_member_ids(group=group, member_ids=ids, source="api")

    # Alternated, so that the history growing run by run weighs on both alike.
    plain, hooked = [], []
    for _ in range(3):
        WebhookEndpoint.objects.filter(club=club).delete()
        plain.append(median_seconds(add, runs=1, setup=remove))
        WebhookEndpoint.objects.create(club=club, url=url)
        hooked.append(median_seconds(add, runs=1, setup=remove))
    report(
        "bulk add 100,000, one webhook endpoint",
        statistics.median(hooked),
        "no endpoint",
        statistics.median(plain),
    )

    WebhookDelivery.objects.filter(club=club).delete()
    remove()
    add()
    deliveries = list(WebhookDelivery.objects.filter(club=club).order_by("pk"))
    events = sum(d.events_count for d in deliveries)
    started = time.perf_counter()
    call_command("send_webhooks", stdout=StringIO())
    sending = time.perf_counter() - started
    sent = WebhookDelivery.objects.filter(club=club, status="delivered").count()
    assert sent == len(deliveries), (sent, len(deliveries))

    # The floor: the same bodies, already built, posted on one kept-alive connection.
    bodies = [body_of(d)[0] for d in deliveries]
    connection = http.client.HTTPConnection("127.0.0.1", server.server_address[1])
    started = time.perf_counter()
    for body in bodies:
        connection.request("POST", "/hooks", body=body)
        connection.getresponse().read()
    floor = time.perf_counter() - started
    connection.close()
    print(f"{len(deliveries)} deliveries of {events:,} events")
    report("send_webhooks (build, sign, post, record)", sending, "bare POSTs of the bodies", floor)
    print(
        f"    {events / sending:,.0f} events/s sent, {events / floor:,.0f} events/s bare; "
        f"{sending / len(deliveries) * 1000:.1f} ms per delivery"
    )
    WebhookEndpoint.objects.filter(club=club).delete()
    server.shutdown()
