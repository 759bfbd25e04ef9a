"""Issue 19: the CPU one API request costs the server, beside its SQL alone and the target.

Four kinds of request on the bench club and the load benchmark's groups (``bench/load.py``):
show a group, a page of 100 of a group's members, a list of 100 groups, and a PATCH of a
member's properties (re-evaluating the club's automatic groups). Each kind is sent N times,
one at a time, to gunicorn with one sync worker, whose CPU time (the scheduler's count,
to the nanosecond) before and after gives the CPU per request. Beside it: the statements the same
requests run (captured in this process through Django's test client), replayed bare by
psycopg and timed, and the issue's target. Then where the CPU goes: the same requests in
this process, each phase's CPU time (``time.thread_time``) counted apart.
"""

from __future__ import annotations

import cProfile
import functools
import io
import json
import logging
import os
import pstats
import random
import statistics
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
import psycopg

from bench.dataset import BENCH_DATABASE_URL, CLUB_SLUG, ROOT, random_properties
from bench.harness import ApiClient, cpu_seconds, gunicorn_server, report, setup_django

# The server's settings, in gunicorn and in this process alike. Request logging on, as in
# production (its lines go nowhere): formatting them is part of a request's cost.
SERVER_ENV = {
    "DEBUG": "false",
    "API_RATE_LIMIT": "100000/min",
    "LOG_LEVEL": "INFO",
    # One worker serves every request: gunicorn must not replace it midway.
    "GUNICORN_MAX_REQUESTS": "0",
}
WARM_UP = 20
ROUNDS = 6  # even: side by side, each checkout goes first as often
CAPTURED = 20  # requests of each kind whose statements are captured and replayed
REPLAY_ROUNDS = 5

Request = tuple[str, str, Any]  # method, path under /v3/<club>/, JSON body


@dataclass(frozen=True)
class Kind:
    name: str
    target: float  # CPU seconds per request (issue 19)
    requests: Callable[[random.Random, dict[str, Any]], Request]


def _show(rng: random.Random, config: dict[str, Any]) -> Request:
    group_id = rng.choice(config["groups"])[0]
    return "GET", f"members_groups/{group_id}", None


def _page(rng: random.Random, config: dict[str, Any]) -> Request:
    group_id, count = rng.choice(config["groups"])
    page = rng.randint(1, max(1, min(20, count // 100)))
    return "GET", f"members_groups/{group_id}/members?per_page=100&page_no={page}", None


def _list(rng: random.Random, config: dict[str, Any]) -> Request:
    return "GET", f"members_groups?per_page=100&page_no={rng.randint(1, 2)}", None


def _patch(rng: random.Random, config: dict[str, Any]) -> Request:
    member_id = config["id_offset"] + rng.randint(1, config["members"])
    return "PATCH", f"members/{member_id}", {"properties": random_properties(rng)}


KINDS = (
    Kind("show a group", 0.003, _show),
    Kind("a page of 100 members", 0.006, _page),
    Kind("a list of 100 groups", 0.006, _list),
    Kind("PATCH a member", 0.010, _patch),
)


def run(
    club_id: int, members: int, count: int, top: int, phases: bool, baseline: Path | None
) -> None:
    """Run ``main`` in a process of its own: it sets Django up with the server's settings."""
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "loyalty.settings", "PYTHONPATH": str(ROOT)}
    other = None if baseline is None else str(baseline.resolve())
    code = (
        f"from bench.requests import main; "
        f"main({club_id}, {members}, {count}, {top}, {phases}, {other!r})"
    )
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, check=True)


def main(
    club_id: int, members: int, count: int, top: int, phases: bool, baseline: str | None
) -> None:
    """Measure, print, profile; ``baseline`` names another checkout of the project served
    beside this one, whose CPU per request is printed as a baseline too."""
    setup_django(**SERVER_ENV)
    # The load benchmark's groups, made on its first run; this imports Django's models.
    from bench.load import PREFIX, _config, ensure_groups

    first_id = ensure_groups(club_id, members)
    # The requests sent in this process log as in production, but their lines go nowhere
    # (after ensure_groups: its django.setup() configures logging again).
    loggers = [logging.getLogger(), *logging.Logger.manager.loggerDict.values()]
    devnull = open(os.devnull, "w")  # noqa: SIM115 (for the process's life)
    for logger in loggers:
        for handler in getattr(logger, "handlers", []):
            if isinstance(handler, logging.StreamHandler):
                handler.setStream(devnull)
    # The target's PATCH re-evaluates the load's 10 automatic groups: other benchmarks'
    # automatic groups go (the automatic benchmark makes its own again on each run).
    from groups.models import MembersGroup

    MembersGroup.objects.filter(club_id=club_id, automatic=True, system=False).exclude(
        name__startswith=PREFIX
    ).delete()
    config = _config(club_id, members, first_id, max_wait=0)
    checkouts = [ROOT] if baseline is None else [ROOT, Path(baseline)]
    # Each checkout its own requests, drawn alike: the same PATCH sent twice would change
    # nothing the second time.
    plans = [_plan(random.Random(19 + n), config, count) for n in range(len(checkouts))]
    plan = plans[0]
    warm = _plan(random.Random(0), config, WARM_UP)
    cpu, *other = _server_cpu(config["token"], plans, warm, checkouts)
    statements, sql = _statements(config["token"], plan)
    print(
        f"\nCPU per request: gunicorn, 1 sync worker, {count} requests of each kind one at a "
        f"time in {ROUNDS} rounds (the median round); club of {members:,} members, "
        f"{len(config['groups']) - 1} load groups, "
        f"{config['club_automatic']} automatic groups in the club. SQL alone: the statements "
        f"of {CAPTURED} of the requests replayed by psycopg (median of {REPLAY_ROUNDS}; a "
        "PATCH's in a transaction rolled back).",
        flush=True,
    )
    for kind in KINDS:
        print(f"{kind.name}: {statements[kind.name]:.1f} statements per request", flush=True)
        report(f"  CPU per request, {kind.name}", cpu[kind.name], "its SQL alone", sql[kind.name])
        report(f"  CPU per request, {kind.name}", cpu[kind.name], "target", kind.target)
        for cpu_there in other:
            report(
                f"  CPU per request, {kind.name}", cpu[kind.name], "baseline", cpu_there[kind.name]
            )
    if phases:
        _profile(config["token"], plan, top)


def _plan(rng: random.Random, config: dict[str, Any], count: int) -> dict[str, list[Request]]:
    return {kind.name: [kind.requests(rng, config) for _ in range(count)] for kind in KINDS}


def _server_cpu(
    token: str,
    plans: list[dict[str, list[Request]]],
    warm: dict[str, list[Request]],
    checkouts: list[Path],
) -> list[dict[str, float]]:
    """CPU per request of each kind, for each checkout, served side by side."""
    with ExitStack() as stack:
        servers = []
        for root in checkouts:
            base, server = stack.enter_context(gunicorn_server(1, root, SERVER_ENV))
            (worker,) = psutil.Process(server.pid).children()
            servers.append((worker, ApiClient(base, CLUB_SLUG, token)))
        for _worker, api in servers:
            for requests in warm.values():
                for method, path, body in requests:
                    api.call(method, path, body)
        # In rounds, each kind in turn and the checkouts in alternating order: the median
        # round of each is spared the bursts of other work on a shared machine.
        rounds: list[dict[str, list[float]]] = [{kind.name: [] for kind in KINDS} for _ in servers]
        for round_ in range(ROUNDS):
            for kind in KINDS:
                order = range(len(servers)) if round_ % 2 == 0 else reversed(range(len(servers)))
                for index in order:
                    worker, api = servers[index]
                    batch = plans[index][kind.name][round_::ROUNDS]
                    before = cpu_seconds(worker)
                    for method, path, body in batch:
                        api.call(method, path, body)
                    rounds[index][kind.name].append((cpu_seconds(worker) - before) / len(batch))
        return [
            {name: statistics.median(times) for name, times in served.items()} for served in rounds
        ]


def _client(token: str) -> Any:
    from django.test import Client

    return Client(
        headers={
            "X-Client-Authorization": token,
            "X-User-Agent": "bench/1.0",
            "X-Product-Name": "members-groups-bench",
        }
    )


def _send(client: Any, request: Request) -> None:
    method, path, body = request
    url = f"/v3/{CLUB_SLUG}/{path}"
    if body is None:
        response = client.generic(method, url)
    else:
        response = client.generic(method, url, json.dumps(body), "application/json")
    if response.status_code >= 300:
        raise SystemExit(f"{method} {path}: {response.status_code} {response.content[:200]!r}")


def _send_all(client: Any, requests: list[Request]) -> None:
    for request in requests:
        _send(client, request)


def _statements(
    token: str, plan: dict[str, list[Request]]
) -> tuple[dict[str, float], dict[str, float]]:
    """Statements per request of each kind, and the time they take replayed bare."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    client = _client(token)
    counts, sql = {}, {}
    with psycopg.connect(BENCH_DATABASE_URL, autocommit=True) as bare:
        for name, requests in plan.items():
            captured = []
            for request in requests[:CAPTURED]:
                with CaptureQueriesContext(connection) as queries:
                    _send(client, request)
                captured.append([query["sql"] for query in queries.captured_queries])
            counts[name] = statistics.mean(map(len, captured))
            writes = requests[0][0] != "GET"
            rounds = []
            for _ in range(REPLAY_ROUNDS):
                started = time.perf_counter()
                for statements in captured:
                    _replay(bare, statements, writes)
                rounds.append((time.perf_counter() - started) / len(captured))
            sql[name] = statistics.median(rounds)
    return counts, sql


def _replay(bare: psycopg.Connection[Any], statements: list[str], writes: bool) -> None:
    if writes:
        bare.execute("BEGIN")
    try:
        for statement in statements:
            cursor = bare.execute(statement.encode())
            if cursor.description is not None:
                cursor.fetchall()
    finally:
        if writes:
            bare.execute("ROLLBACK")


class PhaseClock:
    """CPU time (this thread's) per phase of a request; a nested phase's time is its own."""

    def __init__(self) -> None:
        self.totals: dict[str, float] = defaultdict(float)
        self.stack: list[str] = []
        self.mark = 0.0

    def enter(self, phase: str) -> None:
        now = time.thread_time()
        if self.stack:
            self.totals[self.stack[-1]] += now - self.mark
        self.stack.append(phase)
        self.mark = now

    def leave(self) -> None:
        now = time.thread_time()
        self.totals[self.stack.pop()] += now - self.mark
        self.mark = now

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        self.enter(name)
        try:
            yield
        finally:
            self.leave()

    def timed(self, phase: str, func: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(func)
        def timed(*args: Any, **kwargs: Any) -> Any:
            with self.phase(phase):
                return func(*args, **kwargs)

        return timed

    def sql(self, execute: Callable[..., Any], *args: Any) -> Any:
        with self.phase(f"SQL ({self.stack[-1]})" if self.stack else "SQL"):
            return execute(*args)


# Where each phase is timed: (module, class, attribute, phase).
PHASES = (
    # Outermost: what no phase below takes (Django's handler, middleware, URL resolving).
    ("django.core.handlers.base", "BaseHandler", "get_response", "Django and middleware"),
    ("rest_framework.views", "APIView", "dispatch", "view and ORM"),
    ("rest_framework.views", "APIView", "perform_authentication", "authentication"),
    ("rest_framework.views", "APIView", "check_throttles", "throttle"),
    ("rest_framework.views", "APIView", "check_permissions", "permission"),
    ("rest_framework.serializers", "Serializer", "to_representation", "serializer"),
    ("rest_framework.serializers", "ListSerializer", "to_representation", "serializer"),
    ("rest_framework.serializers", "BaseSerializer", "is_valid", "serializer"),
    ("loyalty.api.renderers", "ApiJSONRenderer", "render", "render"),
    ("logging", "Logger", "_log", "logging"),
    ("django.db.backends.base.base", "BaseDatabaseWrapper", "connect", "connection"),
    (
        "django.db.backends.base.base",
        "BaseDatabaseWrapper",
        "close_if_unusable_or_obsolete",
        "connection",
    ),
    (
        "django.db.backends.base.base",
        "BaseDatabaseWrapper",
        "close_if_health_check_failed",
        "connection",
    ),
)


@contextmanager
def _phases(clock: PhaseClock) -> Iterator[None]:
    import importlib

    from django.db import connections

    originals = []
    for module, cls_name, attribute, phase in PHASES:
        cls = getattr(importlib.import_module(module), cls_name)
        original = cls.__dict__[attribute]
        originals.append((cls, attribute, original))
        setattr(cls, attribute, clock.timed(phase, original))
    try:
        with ExitStack() as stack:
            for alias in connections:
                stack.enter_context(connections[alias].execute_wrapper(clock.sql))
            yield
    finally:
        for cls, attribute, original in originals:
            setattr(cls, attribute, original)


def _profile(token: str, plan: dict[str, list[Request]], top: int) -> None:
    """Each kind's CPU per request in this process, by phase; ``top`` > 0 adds cProfile's
    functions of most own time."""
    client = _client(token)
    table: dict[str, dict[str, float]] = {}
    for name, requests in plan.items():
        clock = PhaseClock()
        with _phases(clock):
            for request in requests:
                _send(client, request)
        table[name] = clock.totals
        if top:
            profiler = cProfile.Profile()
            profiler.runcall(_send_all, client, requests)
            out = io.StringIO()
            pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(top)
            print(f"\ncProfile, {name}:\n{out.getvalue()}", flush=True)
    phases = sorted({phase for totals in table.values() for phase in totals})
    count = len(next(iter(plan.values())))
    print(
        f"\nWhere the CPU goes (this process, Django's test client, ms per request of "
        f"{count}; SQL (x): the driver's and Django's CPU for the statements of phase x):",
        flush=True,
    )
    names = list(table)
    print(f"  {'phase':<40}" + "".join(f"{name[:14]:>16}" for name in names), flush=True)
    for phase in [*phases, "total"]:
        cells = [
            sum(table[name].values()) if phase == "total" else table[name][phase] for name in names
        ]
        print(
            f"  {phase:<40}" + "".join(f"{cell * 1000 / count:>16.2f}" for cell in cells),
            flush=True,
        )
