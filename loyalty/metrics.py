"""Prometheus metrics at ``/metrics``: requests counted per process, backlogs read at scrape.

Requests (by route, method and status), their latency and their database statements are
counted by ``MetricsMiddleware`` in each web process. Under gunicorn, several worker
processes each count their own: with ``PROMETHEUS_MULTIPROC_DIR`` set (gunicorn.conf.py
sets it), prometheus-client's multiprocess mode keeps the counts in files there and a scrape
of any worker adds every worker's up. Backlogs (the task queue, pending recomputations,
webhook deliveries) are facts of the database, read at each scrape by the functions apps
register with ``gauges``, so every process reports the same, whole picture.

Only callers with the ``METRICS_TOKEN`` (``Authorization: Bearer ...``) or from
``METRICS_ALLOWED_IPS`` may read it.
"""

from __future__ import annotations

import hmac
import ipaddress
import os
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import ExitStack
from datetime import UTC, datetime
from typing import Any

from django.conf import settings
from django.db import connections
from django.db.models import Case, Count, F, Min, When
from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from django.utils.module_loading import autodiscover_modules
from django_tasks import DEFAULT_TASK_BACKEND_ALIAS, task_backends
from django_tasks_db.backend import DatabaseBackend
from django_tasks_db.models import DBTaskResult, get_date_max
from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import choose_encoder
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

from loyalty.api.error_responses import error_body
from loyalty.api.renderers import json_response

PREFIX = "members_groups_"
# A request no URL pattern matched (a 404, a static file WhiteNoise served).
UNMATCHED = "<unmatched>"

REQUESTS = Counter(
    f"{PREFIX}http_requests",
    "HTTP requests answered, by route (the URL pattern's name), method and status.",
    ["route", "method", "status"],
)
LATENCY = Histogram(
    f"{PREFIX}http_request_duration_seconds",
    "Time from a request's arrival in Django to its response, by route and method.",
    ["route", "method"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
STATEMENTS = Histogram(
    f"{PREFIX}http_request_db_statements",
    "SQL statements one request ran (every database alias), by route.",
    ["route"],
    buckets=(0, 1, 2, 3, 5, 8, 13, 21, 34, 55, 89, 144),
)

GaugeSource = Callable[[datetime], Iterable[Metric]]
GAUGE_SOURCES: list[GaugeSource] = []


def gauges(source: GaugeSource) -> GaugeSource:
    """Register a function giving gauges read at scrape time (passed the scrape's time)."""
    GAUGE_SOURCES.append(source)
    return source


def seconds_since(moment: datetime | None, now: datetime) -> float:
    return max((now - moment).total_seconds(), 0.0) if moment else 0.0


def route_of(request: HttpRequest) -> str:
    match = request.resolver_match
    if match is None:
        return UNMATCHED
    return match.view_name or match.route


class MetricsMiddleware:
    """Count each request, its latency and its SQL statements, by route."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        statements = 0

        def count(execute: Callable[..., Any], sql: str, params: Any, many: bool, ctx: Any) -> Any:
            nonlocal statements
            statements += 1
            return execute(sql, params, many, ctx)

        started = time.perf_counter()
        with ExitStack() as stack:
            for alias in connections:
                stack.enter_context(connections[alias].execute_wrapper(count))
            response = self.get_response(request)
        route = route_of(request)
        REQUESTS.labels(route, request.method, str(response.status_code)).inc()
        LATENCY.labels(route, request.method).observe(time.perf_counter() - started)
        STATEMENTS.labels(route).observe(statements)
        return response


class _ThisProcess(Collector):
    """The metrics this process counted itself (outside gunicorn's multiprocess mode)."""

    def collect(self) -> Iterator[Metric]:
        yield from REGISTRY.collect()


class _Backlogs(Collector):
    """Every registered gauge source, read now."""

    def collect(self) -> Iterator[Metric]:
        now = timezone.now()
        for source in GAUGE_SOURCES:
            yield from source(now)


def registry() -> CollectorRegistry:
    """What one scrape reports."""
    autodiscover_modules("metrics")
    scrape = CollectorRegistry(auto_describe=False)
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        MultiProcessCollector(scrape)
    else:
        scrape.register(_ThisProcess())
    scrape.register(_Backlogs())
    return scrape


def allowed(request: HttpRequest) -> bool:
    token = settings.METRICS_TOKEN
    sent = request.headers.get("Authorization", "")
    if token and hmac.compare_digest(sent.encode(), f"Bearer {token}".encode()):
        return True
    try:
        address = ipaddress.ip_address(request.META.get("REMOTE_ADDR", ""))
    except ValueError:
        return False
    return any(
        address in ipaddress.ip_network(network, strict=False)
        for network in settings.METRICS_ALLOWED_IPS
    )


def metrics(request: HttpRequest) -> HttpResponse:
    """The Prometheus text format, to callers with the token or from an allowed address."""
    if request.method not in ("GET", "HEAD"):
        response = json_response(error_body("Method not allowed"), status=405)
        response["Allow"] = "GET, HEAD"
        return response
    if not allowed(request):
        return json_response(
            error_body("Metrics need METRICS_TOKEN or an address in METRICS_ALLOWED_IPS."),
            status=403,
        )
    # The format the scraper asks for (Prometheus's Accept header), as prometheus-client's own
    # exporters answer; the classic text format otherwise.
    encode, content_type = choose_encoder(request.headers.get("Accept", ""))
    return HttpResponse(encode(registry()), content_type=content_type)


@gauges
def task_queue(now: datetime) -> Iterator[Metric]:
    """How many tasks wait to run, and for how long the oldest has waited."""
    depth = GaugeMetricFamily(
        f"{PREFIX}task_queue_depth", "Tasks due to run and not yet started.", labels=["queue"]
    )
    age = GaugeMetricFamily(
        f"{PREFIX}task_queue_oldest_seconds",
        "Seconds the longest-waiting due task has waited (0: none waits).",
        labels=["queue"],
    )
    backend = task_backends[DEFAULT_TASK_BACKEND_ALIAS]
    # Every queue of the backend, at 0 while it is empty: an absent series would read as a
    # scrape that failed, and alerts on it would not fire.
    waiting: dict[str, tuple[int, datetime | None]] = dict.fromkeys(backend.queues, (0, None))
    if isinstance(backend, DatabaseBackend):
        # A deferred task (a webhook retry) waits from its run_after, others from enqueueing.
        waiting_since = Case(
            When(run_after=get_date_max(), then=F("enqueued_at")), default=F("run_after")
        )
        ready = DBTaskResult.objects.ready().filter(backend_name=backend.alias).order_by()
        for row in ready.values("queue_name").annotate(tasks=Count("pk"), since=Min(waiting_since)):
            waiting[row["queue_name"]] = (row["tasks"], row["since"])
    elif backend.__class__.__module__.startswith("django_tasks_rq"):
        from django_rq import get_queue

        for name in backend.queues:
            queue = get_queue(name)
            oldest = queue.get_jobs(0, 1)
            enqueued_at = oldest[0].enqueued_at if oldest else None
            if enqueued_at is not None and enqueued_at.tzinfo is None:
                enqueued_at = enqueued_at.replace(tzinfo=UTC)  # RQ keeps naive UTC times
            waiting[name] = (queue.count, enqueued_at)
    for name, (tasks, since) in sorted(waiting.items()):
        depth.add_metric([name], tasks)
        age.add_metric([name], seconds_since(since, now))
    yield depth
    yield age
