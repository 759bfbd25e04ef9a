"""Gunicorn's worker processes, as production starts them: the rate limit, counted in the
shared (database) cache, lets at most the limit through whatever worker serves; the metrics,
counted by each worker, are scraped whole from any of them."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from django.db import connection
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from loyalty.models import ApiToken
from loyalty.services import create_api_token
from tests.api_fixtures import ClubClient
from tests.factories import ClubFactory
from tests.loyalty.test_throttling import DATABASE, burst_of_one_token

pytestmark = pytest.mark.django_db(transaction=True)

ROOT = Path(__file__).resolve().parent.parent.parent
LIMIT = 20
REQUESTS = 80
WORKERS = 4


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def gunicorn(request: pytest.FixtureRequest) -> Iterator[Any]:
    """Start ``gunicorn loyalty.wsgi`` with the repository's config on the test database."""
    started: list[subprocess.Popen[bytes]] = []
    db = connection.settings_dict

    def start(**env: str) -> str:
        port = free_port()
        process = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "loyalty.wsgi"],
            cwd=ROOT,
            env={
                **os.environ,
                "PORT": str(port),
                "WEB_CONCURRENCY": str(WORKERS),
                "DATABASE_URL": f"postgres://{db['USER']}:{db['PASSWORD']}@{db['HOST']}:"
                f"{db['PORT']}/{db['NAME']}",
                "API_RATE_LIMIT": f"{LIMIT}/hour",
                "LOG_LEVEL": "WARNING",
                **env,
            },
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        started.append(process)
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"{base}/healthz", timeout=2) as response:
                    if response.status == 200:
                        return base
            except OSError:
                time.sleep(0.2)
        raise AssertionError("gunicorn did not answer /healthz within 30 s")

    yield start
    for process in started:
        process.terminate()
        process.wait(timeout=30)


def burst(base: str, slug: str, raw: str) -> Counter[int]:
    barrier = threading.Barrier(REQUESTS)
    statuses: list[int] = []
    request = urllib.request.Request(
        f"{base}/v3/{slug}/members_groups",
        headers={
            "X-Client-Authorization": raw,
            "X-User-Agent": "tests/1.0",
            "X-Product-Name": "Members Groups tests",
        },
    )

    def send() -> None:
        barrier.wait()
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                statuses.append(response.status)
        except urllib.error.HTTPError as error:
            statuses.append(error.code)

    threads = [threading.Thread(target=send) for _ in range(REQUESTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return Counter(statuses)


def new_token(slug: str) -> str:
    club = ClubFactory(slug=slug)
    token, raw = create_api_token(club=club, name="burst", permits=["BL:Api:MembersGroups:List"])
    ApiToken.objects.filter(pk=token.pk).update(last_used_at=timezone.now())
    return raw


def test_the_limit_holds_across_worker_processes_with_the_shared_cache(gunicorn: Any) -> None:
    base = gunicorn()  # CACHE_URL unset: the production default, the database cache
    statuses = burst(base, "burst", new_token("burst"))

    print(  # noqa: T201 - the measurement is what the test reports
        f"\n{WORKERS} gunicorn workers, database cache: {REQUESTS} parallel requests, "
        f"limit {LIMIT}: {statuses[200]} passed, overshoot {statuses[200] - LIMIT}"
    )
    assert statuses == {200: LIMIT, 429: REQUESTS - LIMIT}


def test_a_per_process_cache_would_not_hold_the_limit(gunicorn: Any) -> None:
    """Why production needs a shared cache: locmem counts in each worker on its own."""
    base = gunicorn(CACHE_URL="locmemcache://")
    statuses = burst(base, "burst-locmem", new_token("burst-locmem"))

    print(  # noqa: T201 - the measurement is what the test reports
        f"\n{WORKERS} gunicorn workers, locmem cache: {REQUESTS} parallel requests, "
        f"limit {LIMIT}: {statuses[200]} passed, overshoot {statuses[200] - LIMIT}"
    )
    assert LIMIT <= statuses[200] <= LIMIT * WORKERS


def test_parallel_requests_counted_in_the_database_cache_pass_at_most_the_limit(
    settings: Any,
    make_token: Callable[..., tuple[ApiToken, str]],
    client_for: Callable[..., ClubClient],
) -> None:
    burst_of_one_token(DATABASE, settings, make_token, client_for)


def test_a_scrape_of_any_worker_counts_the_requests_of_every_worker(
    gunicorn: Any, tmp_path: Path
) -> None:
    base = gunicorn(METRICS_TOKEN="scrape", PROMETHEUS_MULTIPROC_DIR=str(tmp_path))
    barrier = threading.Barrier(REQUESTS)

    def probe() -> None:
        barrier.wait()
        with urllib.request.urlopen(f"{base}/healthz", timeout=30) as response:
            assert response.status == 200

    threads = [threading.Thread(target=probe) for _ in range(REQUESTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    scrape = urllib.request.Request(f"{base}/metrics", headers={"Authorization": "Bearer scrape"})
    counts = set()
    for _ in range(2 * WORKERS):
        with urllib.request.urlopen(scrape, timeout=30) as response:
            families = text_string_to_metric_families(response.read().decode())
        counts |= {
            sample.value
            for family in families
            for sample in family.samples
            if sample.name == "members_groups_http_requests_total"
            and sample.labels["route"] == "healthz"
        }

    # The fixture's own probes before these, plus these: the same total from every worker.
    assert len(counts) == 1
    assert counts.pop() >= REQUESTS
    # Served by several workers, each counting in its own file.
    assert len({path.name.rsplit("_", 1)[1] for path in tmp_path.glob("counter_*.db")}) > 1
