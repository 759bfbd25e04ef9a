"""Prometheus metrics at /metrics: who may read them, requests by route with their latency
and statements, and the backlogs read from the database at each scrape."""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
import redis
import time_machine
from django.db import DEFAULT_DB_ALIAS, connections
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from groups import services
from groups.models import MembersGroup
from groups.tasks import refresh_relative_date_groups_task
from groups.webhooks.models import DeliveryStatus, WebhookDelivery
from loyalty.models import Club
from tests.api_fixtures import ClubClient
from tests.factories import MemberFactory, WebhookEndpointFactory
from tests.helpers import cond

pytestmark = pytest.mark.django_db

TOKEN = "scrape-secret"
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


@pytest.fixture(autouse=True)
def metrics_token(settings: Any) -> None:
    settings.METRICS_TOKEN = TOKEN
    settings.METRICS_ALLOWED_IPS = []


def scrape(**headers: str) -> Samples:
    response = Client().get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}", **headers)
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("text/plain; version=0.0.4")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.content.decode())
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


# Who may read them ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "remote"),
    [
        ({}, "203.0.113.9"),
        ({"HTTP_AUTHORIZATION": "Bearer wrong"}, "203.0.113.9"),
        ({"HTTP_AUTHORIZATION": TOKEN}, "203.0.113.9"),
        ({}, "10.1.0.1"),
    ],
)
def test_metrics_are_refused_without_the_token_or_an_allowed_address(
    settings: Any, headers: dict[str, str], remote: str
) -> None:
    settings.METRICS_ALLOWED_IPS = ["10.0.0.0/16"]

    response = Client().get("/metrics", REMOTE_ADDR=remote, **headers)

    assert response.status_code == 403
    assert response.json() == {
        "error": "Metrics need METRICS_TOKEN or an address in METRICS_ALLOWED_IPS."
    }


def test_with_nothing_configured_nobody_reads_the_metrics(settings: Any) -> None:
    settings.METRICS_TOKEN = ""

    assert Client().get("/metrics", HTTP_AUTHORIZATION="Bearer ").status_code == 403
    assert Client().get("/metrics").status_code == 403


def test_an_allowed_address_or_network_reads_the_metrics_without_a_token(settings: Any) -> None:
    settings.METRICS_ALLOWED_IPS = ["10.0.0.0/16", "192.0.2.7"]

    assert Client().get("/metrics", REMOTE_ADDR="10.0.3.4").status_code == 200
    assert Client().get("/metrics", REMOTE_ADDR="192.0.2.7").status_code == 200
    assert Client().get("/metrics", REMOTE_ADDR="192.0.2.8").status_code == 403


def test_metrics_refuse_other_methods_in_the_error_format() -> None:
    response = Client().post("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")

    assert response.status_code == 405
    assert response.json() == {"error": "Method not allowed"}


# Requests ---------------------------------------------------------------------------------


def test_requests_are_counted_by_route_method_and_status_with_latency_and_statements(
    club: Club, make_client: Callable[..., ClubClient]
) -> None:
    api = make_client(club)
    route = "members-group-list"
    before = scrape()

    with CaptureQueriesContext(connections[DEFAULT_DB_ALIAS]) as queries:
        assert api.get("members_groups").status_code == 200
    statements = len(queries)
    assert api.get("members_groups/999999").status_code == 404
    assert Client().get("/nowhere").status_code == 404
    after = scrape()

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    ok = {"route": route, "method": "GET", "status": "200"}
    assert delta("members_groups_http_requests_total", **ok) == 1
    assert (
        delta(
            "members_groups_http_requests_total",
            route="members-group-detail",
            method="GET",
            status="404",
        )
        == 1
    )
    assert (
        delta("members_groups_http_requests_total", route="<unmatched>", method="GET", status="404")
        == 1
    )
    assert (
        delta("members_groups_http_request_duration_seconds_count", route=route, method="GET") == 1
    )
    assert delta("members_groups_http_request_duration_seconds_sum", route=route, method="GET") > 0
    assert statements > 0
    assert delta("members_groups_http_request_db_statements_count", route=route) == 1
    assert delta("members_groups_http_request_db_statements_sum", route=route) == statements


# Backlogs, read at each scrape -----------------------------------------------------------


def test_the_task_queue_depth_and_its_oldest_tasks_wait(settings: Any) -> None:
    settings.TASKS = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend"}}
    now = timezone.now()
    with time_machine.travel(now - timedelta(minutes=10), tick=False):
        refresh_relative_date_groups_task.enqueue(club_id=1)
    refresh_relative_date_groups_task.enqueue(club_id=2)
    # Deferred for later: not yet due, so neither queued nor waiting.
    refresh_relative_date_groups_task.using(run_after=now + timedelta(hours=1)).enqueue(club_id=3)

    with time_machine.travel(now, tick=False):
        samples = scrape()

    assert value(samples, "members_groups_task_queue_depth", queue="default") == 2
    assert value(samples, "members_groups_task_queue_oldest_seconds", queue="default") == 600


@pytest.mark.parametrize(
    "backend",
    [
        {"BACKEND": "django_tasks_db.DatabaseBackend"},
        {"BACKEND": "django_tasks_rq.RQBackend", "QUEUES": ["default"]},
        {"BACKEND": "django_tasks.backends.immediate.ImmediateBackend"},
    ],
)
def test_an_empty_task_queue_is_reported_at_zero_not_left_out(
    settings: Any, backend: dict[str, Any]
) -> None:
    url = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0").rsplit("/", 1)[0] + "/12"
    redis.Redis.from_url(url).flushdb()
    settings.TASKS = {"default": backend}
    settings.RQ_QUEUES = {"default": {"URL": url}}

    samples = scrape()

    for name in ("members_groups_task_queue_depth", "members_groups_task_queue_oldest_seconds"):
        assert samples[(name, (("queue", "default"),))] == 0


def test_the_rq_queue_depth_is_read_from_redis(settings: Any) -> None:
    url = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0").rsplit("/", 1)[0] + "/12"
    server = redis.Redis.from_url(url)
    server.flushdb()
    settings.TASKS = {"default": {"BACKEND": "django_tasks_rq.RQBackend", "QUEUES": ["default"]}}
    settings.RQ_QUEUES = {"default": {"URL": url}}
    refresh_relative_date_groups_task.enqueue(club_id=1)
    refresh_relative_date_groups_task.enqueue(club_id=2)

    samples = scrape()

    assert value(samples, "members_groups_task_queue_depth", queue="default") == 2
    assert value(samples, "members_groups_task_queue_oldest_seconds", queue="default") >= 0
    server.flushdb()


def test_groups_pending_recomputation_and_the_oldest(club: Club, settings: Any) -> None:
    settings.TASKS = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend"}}
    settings.RECOMPUTE_INLINE_MAX = 0
    MemberFactory(club=club)
    now = timezone.now()
    with time_machine.travel(now - timedelta(minutes=5), tick=False):
        services.create_group(
            club=club, name="Big", audience_conditions=[cond("number", "points", "gt", 1)]
        )
    services.create_group(
        club=club, name="Bigger", audience_conditions=[cond("number", "points", "gt", 2)]
    )
    assert MembersGroup.objects.filter(recomputing=True).count() == 2

    with time_machine.travel(now, tick=False):
        samples = scrape()

    assert value(samples, "members_groups_groups_pending_recomputation") == 2
    assert value(samples, "members_groups_groups_pending_recomputation_oldest_seconds") == 300


def test_webhook_deliveries_pending_and_failed(
    club: Club, settings: Any, django_capture_on_commit_callbacks: Any
) -> None:
    settings.TASKS = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend"}}
    WebhookEndpointFactory(club=club)
    now = timezone.now()
    with time_machine.travel(now - timedelta(seconds=90), tick=False):
        for _ in range(3):
            MemberFactory(club=club)
    WebhookDelivery.objects.filter(pk=WebhookDelivery.objects.earliest("pk").pk).update(
        status=DeliveryStatus.FAILED
    )

    with time_machine.travel(now, tick=False):
        samples = scrape()

    assert value(samples, "members_groups_webhook_deliveries", status="pending") == 2
    assert value(samples, "members_groups_webhook_deliveries", status="failed") == 1
    assert value(samples, "members_groups_webhook_oldest_due_seconds") == 90
