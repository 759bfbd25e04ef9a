"""Timing, a live HTTP server of the app, and the table every benchmark prints."""

from __future__ import annotations

import json
import os
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psutil

from bench.dataset import BENCH_DATABASE_URL, ROOT


def median_seconds(
    work: Callable[[], object], runs: int = 3, setup: Callable[[], object] | None = None
) -> float:
    """Median wall time of ``work`` over ``runs`` runs, ``setup`` untimed before each."""
    times = []
    for _ in range(runs):
        if setup:
            setup()
        started = time.perf_counter()
        work()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def report(name: str, seconds: float, baseline_name: str, baseline: float) -> None:
    ratio = seconds / baseline if baseline else float("inf")
    print(
        f"{name:<48} {_fmt(seconds):>10}   {baseline_name:<32} {_fmt(baseline):>10}   "
        f"ratio {ratio:6.2f}x",
        flush=True,
    )


def _fmt(seconds: float) -> str:
    return f"{seconds * 1000:.2f} ms" if seconds < 1 else f"{seconds:.2f} s"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def live_server(workers: int | None = 2) -> Iterator[str]:
    """Serve the app as in production: gunicorn, DEBUG off, persistent DB connections."""
    with gunicorn_server(workers) as (base, _server):
        yield base


@contextmanager
def gunicorn_server(
    workers: int | None = 2, root: Path = ROOT, environment: dict[str, str] | None = None
) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """``live_server``, also giving gunicorn's master process (its workers are its children);
    ``workers`` None leaves their number to gunicorn.conf.py, ``root`` serves another
    checkout of the project (with its .venv), ``environment`` overrides the settings."""
    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": BENCH_DATABASE_URL,
        "DEBUG": "false",
        "API_RATE_LIMIT": "100000/min",
        "CONN_MAX_AGE": "60",
        "LOG_LEVEL": "WARNING",
        **(environment or {}),
    }
    server = subprocess.Popen(
        [
            sys.executable if root == ROOT else str(root / ".venv" / "bin" / "python"),
            "-m",
            "gunicorn",
            "loyalty.wsgi:application",
            "--bind",
            f"127.0.0.1:{port}",
            *([] if workers is None else ["--workers", str(workers)]),
            "--timeout",
            "600",
        ],
        cwd=root,
        env=env,
        # The access log would interleave with the figures.
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(100):
            try:
                urllib.request.urlopen(f"{base}/v3/schema/", timeout=5)
                break
            except OSError:
                time.sleep(0.2)
        yield base, server
    finally:
        server.terminate()
        server.wait(timeout=10)


class ApiClient:
    """The smallest client of the HTTP API: JSON in, JSON out, token headers."""

    def __init__(self, base: str, club: str, token: str) -> None:
        self.root = f"{base}/v3/{club}/"
        self.headers = {
            "X-Client-Authorization": token,
            "X-User-Agent": "bench/1.0",
            "X-Product-Name": "members-groups-bench",
            "Content-Type": "application/json",
        }

    def call(self, method: str, path: str, body: Any = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.root + path, data, self.headers, method=method)
        with urllib.request.urlopen(request, timeout=600) as response:
            raw = response.read()
        return json.loads(raw) if raw else None


def cpu_seconds(process: psutil.Process) -> float:
    """The CPU time of ``process`` so far, to the nanosecond: the scheduler's count of each
    of its threads (/proc/<pid>/task/<tid>/schedstat), where /proc's user and system times
    count in ticks of 10 ms."""
    total = 0
    for thread in process.threads():
        with open(f"/proc/{process.pid}/task/{thread.id}/schedstat") as stat:
            total += int(stat.read().split()[0])
    return total / 1e9


def setup_django(**environment: str) -> None:
    """Point Django at the benchmark database (and any other settings) and set it up."""
    os.environ.update(
        {"DATABASE_URL": BENCH_DATABASE_URL, "DJANGO_SETTINGS_MODULE": "loyalty.settings"}
    )
    os.environ.update(environment)
    import django

    django.setup()
