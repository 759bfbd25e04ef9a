"""The background tasks on Redis: the RQ backend of Django's task framework, two worker
processes at once, the same invariants as the concurrency test, and every membership event
sent to the clubs' webhooks exactly once.

Redis must run on REDIS_URL (default 127.0.0.1:6379; ``make test`` starts one where it can).
The test uses its own Redis database number and empties it first.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import redis
from django.core.management import call_command
from django.db import connection

from groups.models import MembersGroup, Membership, MembershipEvent
from groups.webhooks.models import WebhookDelivery
from loyalty.models import Club
from members.models import Member, MemberImport
from tests.api_fixtures import ClubClient
from tests.factories import ClubFactory, WebhookEndpointFactory
from tests.helpers import assert_consistent, cond
from tests.webhook_receiver import Receiver

pytestmark = pytest.mark.django_db(transaction=True)

ROOT = Path(__file__).resolve().parents[2]
REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0").rsplit("/", 1)[0] + "/13"
RQ_BACKEND = "django_tasks_rq.RQBackend"


@pytest.fixture
def rq_tasks(settings: Any) -> redis.Redis:
    """Tasks enqueued on an empty Redis database; groups of any size recomputed there."""
    server = redis.Redis.from_url(REDIS_URL)
    try:
        server.ping()
    except redis.ConnectionError:
        pytest.fail(f"No Redis on {REDIS_URL}: start redis-server (make test starts one)")
    server.flushdb()
    settings.TASKS = {"default": {"BACKEND": RQ_BACKEND, "QUEUES": ["default"]}}
    settings.RQ_QUEUES = {"default": {"URL": REDIS_URL}}
    settings.RECOMPUTE_INLINE_MAX = 0
    return server


def run_two_workers() -> None:
    """Two RQ workers at once, each leaving when the queue is empty (burst)."""
    env = {
        **os.environ,
        "DATABASE_URL": database_url(),
        "TASK_BACKEND": RQ_BACKEND,
        "REDIS_URL": REDIS_URL,
        # The receiver listens on 127.0.0.1.
        "WEBHOOKS_ALLOW_PRIVATE_ADDRESSES": "true",
    }
    command = [sys.executable, "manage.py", "rqworker", "--burst", "--job-class"]
    workers = [
        subprocess.Popen(
            [*command, "django_tasks_rq.Job", "default"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for _ in range(2)
    ]
    for worker in workers:
        output, _ = worker.communicate(timeout=180)
        assert worker.returncode == 0, output


def database_url() -> str:
    """This test's database, for the worker processes."""
    conf = connection.settings_dict
    port = conf.get("PORT") or 5432
    return f"postgres://{conf['USER']}@{conf['HOST'] or '127.0.0.1'}:{port}/{conf['NAME']}"


def test_recomputations_imports_and_webhooks_run_on_rq_with_two_workers(
    rq_tasks: redis.Redis, make_client: Callable[..., ClubClient], receiver: Receiver
) -> None:
    clubs = [ClubFactory(slug=f"rq-{n}") for n in range(2)]
    for club in clubs:
        WebhookEndpointFactory(club=club, url=f"{receiver.url}/{club.slug}")
        api = make_client(club)
        members = [{"email": f"m{n}@rq.example", "properties": {"points": n}} for n in range(300)]
        response = api.post(
            "members/imports",
            {
                "import_id": "first",
                "operation": "create",
                "member_identifier_type": "email",
                "multi_values_update_mode": "replace",
                "members": members,
            },
            format="json",
        )
        assert response.status_code == 202
    assert rq_tasks.llen("rq:queue:default") == 2
    run_two_workers()

    for club in clubs:
        assert MemberImport.objects.get(club=club).status == "done"
        assert Member.objects.filter(club=club).count() == 300
        api = make_client(club)
        for low in (0, 100, 200):
            rule = [cond("number", "points", "gte", low)]
            response = api.post(
                "members_groups", {"name": f"{low}+", "audience_conditions": rule}, format="json"
            )
            assert response.status_code == 201
            assert response.json()["recomputing"] is True
    assert rq_tasks.llen("rq:queue:default") == 6
    run_two_workers()

    check_invariants(clubs)
    check_webhooks(clubs, receiver)


def check_invariants(clubs: list[Club]) -> None:
    for club in clubs:
        for group in MembersGroup.objects.filter(club=club):
            assert_consistent(group)
            assert not group.recomputing
        for low in (0, 100, 200):
            group = MembersGroup.objects.get(club=club, name=f"{low}+")
            assert group.members_count == 300 - low
            assert Membership.objects.filter(group=group).count() == 300 - low
    call_command("recompute_groups", "--check")


def check_webhooks(clubs: list[Club], receiver: Receiver) -> None:
    """Each club's endpoint got each of its club's events once, in batches of 1,000 at most."""
    assert set(WebhookDelivery.objects.values_list("status", flat=True)) == {"delivered"}
    for club in clubs:
        received = Counter(
            (e["id"], e["kind"], e["group_id"], e["member_id"])
            for r in receiver.accepted(f"/{club.slug}")
            for e in r.events
        )
        recorded = MembershipEvent.objects.filter(club=club)
        assert received == Counter(recorded.values_list("id", "kind", "group_id", "member_id"))
        # 300 imports join All members, then three rules add 300, 200 and 100 members.
        assert recorded.count() == 900
