"""Issue 6: a mixed API load on gunicorn as gunicorn.conf.py sets it (WEB_CONCURRENCY,
GUNICORN_WORKER_CLASS and GUNICORN_THREADS choose otherwise), a club of 1,000,000 members and 200
groups: 80% reads, 15% member updates, 5% bulk adds of 1,000 emails, driven by locust."""

from __future__ import annotations

import csv
import json
import os
import random
import runpy
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

from bench.api_bulk import make_token
from bench.dataset import CLUB_SLUG, ROOT, email_of
from bench.harness import ApiClient, cpu_seconds, gunicorn_server, live_server, report, setup_django
from bench.load_mix import MIX

PREFIX = "load "
MANUAL_GROUPS = 190
SMALLEST, LARGEST = 1_000, 50_000
BULK_SIZE = 1_000
WARM_UP_SECONDS = 10
TARGET_P99 = 0.250
LOCUSTFILE = Path(__file__).with_name("locustfile.py")


def _condition(type_: str, field: str, operator: str, value: Any) -> dict[str, Any]:
    return {
        "condition_group": "member_properties",
        "type": type_,
        "field": field,
        "operator": operator,
        "value": value,
    }


def _automatic_rules(manual: dict[str, int]) -> dict[str, list[dict[str, Any]]]:
    """Ten rules: points bands (~50k each), mixed properties, and two on manual groups."""
    rules = {
        f"{PREFIX}auto points {n}": [
            _condition("number", "points", "between", [n * 1500, n * 1500 + 499])
        ]
        for n in range(6)
    }
    rules[f"{PREFIX}auto women 9000+"] = [
        _condition("string", "gender", "eq", "female"),
        _condition("number", "points", "gte", 9000),
    ]
    rules[f"{PREFIX}auto golfing Olas"] = [
        _condition("array", "interests", "any", ["golf"]),
        _condition("string", "first_name", "eq", "Ola"),
    ]
    largest = [manual[f"{PREFIX}manual {n:03}"] for n in (MANUAL_GROUPS - 1, MANUAL_GROUPS - 2)]
    # Bulk adds to these two manual groups re-evaluate their dependants for the added members.
    rules[f"{PREFIX}auto largest 5000+"] = [
        _condition("array", "members_group_ids", "any", largest[:1]),
        _condition("number", "points", "gte", 5000),
    ]
    rules[f"{PREFIX}auto largest men"] = [
        _condition("array", "members_group_ids", "any", largest),
        _condition("string", "gender", "eq", "male"),
    ]
    return rules


def ensure_groups(club_id: int, members: int) -> int:
    """Create the missing load groups: 190 manual ones of 1,000 to 50,000 members, 10 automatic;
    take earlier runs' bulk adds out of the manual ones that exist.

    Through the services, so that counts and events are what the API would have written;
    each group in its own transaction, so an interrupted set-up resumes where it stopped.
    Return the id the COPY load gave member 1 (member n has that id + n - 1).
    """
    setup_django()
    from django.conf import settings
    from django.db import connection, transaction

    # No task worker runs during the benchmark: compute automatic groups inline.
    settings.RECOMPUTE_INLINE_MAX = 10**9
    from groups import services
    from groups.models import MembersGroup, Membership, Source
    from loyalty.models import Club
    from members.models import Member

    club = Club.objects.get(pk=club_id)
    # By email: MIN(id) of a club walks the primary key past every other club's members.
    ids = Member.objects.filter(club=club).values_list("id", flat=True)
    first_id = ids.get(email=email_of(1))
    # The locust users derive a member's email and msisdn from its id.
    if ids.get(email=email_of(members)) != first_id + members - 1:
        raise SystemExit("bench club: member ids are not the contiguous ids of its COPY load")
    existing = dict(
        MembersGroup.objects.filter(club=club, name__startswith=PREFIX).values_list("name", "id")
    )
    for n in range(MANUAL_GROUPS):
        name = f"{PREFIX}manual {n:03}"
        size = round(SMALLEST * (LARGEST / SMALLEST) ** (n / (MANUAL_GROUPS - 1)))
        numbers = random.Random(n).sample(range(members), size)
        designed = sorted(first_id + i for i in numbers)
        if name in existing:
            # An earlier run's bulk adds stay in the group: take them out, so that every run
            # starts from the same groups rather than from tables grown by the runs before.
            group = MembersGroup.objects.get(pk=existing[name])
            held = Membership.objects.filter(club=club, group=group)
            added = sorted(set(held.values_list("member_id", flat=True)).difference(designed))
            if added:
                services.remove_member_ids(
                    group=group, member_ids=added, source=Source.IMPORT, actor="bench"
                )
            continue
        with transaction.atomic():
            group = services.create_group(club=club, name=name, type="load")
            services.add_member_ids(
                group=group, member_ids=designed, source=Source.IMPORT, actor="bench"
            )
        existing[name] = group.pk
    for name, conditions in _automatic_rules(existing).items():
        if name not in existing:
            services.create_group(club=club, name=name, type="load", audience_conditions=conditions)
    # Vacuumed, with fresh statistics, as autovacuum would keep them (it may be off on a test
    # server): a group filled since the last ANALYZE is estimated at one row and its
    # dependants' re-evaluation after a bulk add reads all of its members (0.9 s instead of
    # 10 ms); pages never vacuumed are not all-visible, so every index-only read of the
    # memberships visits the table as well. Then a checkpoint, so that no run starts while
    # the pages the vacuum dirtied are still being written.
    with connection.cursor() as cursor:
        cursor.execute(
            "VACUUM (ANALYZE) members_member, groups_membership, groups_membershipevent, "
            "groups_membersgroup"
        )
        cursor.execute("CHECKPOINT")
    return first_id


def _estimated_rows(table: str) -> int:
    """PostgreSQL's estimate of a table's rows, exact enough after the VACUUM (ANALYZE)."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT reltuples::bigint FROM pg_class WHERE oid = %s::regclass", [table])
        return int(cursor.fetchone()[0])


def _config(club_id: int, members: int, first_id: int, max_wait: float) -> dict[str, Any]:
    from groups.models import ALL_MEMBERS_KEY, MembersGroup

    groups = MembersGroup.objects.filter(club_id=club_id)
    load = groups.filter(name__startswith=PREFIX) | groups.filter(system_key=ALL_MEMBERS_KEY)
    return {
        "club": CLUB_SLUG,
        "token": make_token(),
        "members": members,
        "id_offset": first_id - 1,
        "groups": list(load.values_list("id", "members_count")),
        "manual_groups": list(
            groups.filter(name__startswith=PREFIX, automatic=False).values_list("id", flat=True)
        ),
        # Member updates re-evaluate every automatic group, other benchmarks' ones too.
        "club_automatic": groups.filter(automatic=True, system=False).count(),
        # ensure_groups takes earlier runs' bulk adds out again; the events stay.
        "memberships": _estimated_rows("groups_membership"),
        "bulk_size": BULK_SIZE,
        "max_wait": max_wait,
    }


@dataclass(frozen=True)
class Row:
    """One line of locust's stats: a request type, or all of them ("Aggregated")."""

    name: str
    requests: int
    failures: int
    per_second: float
    p50: float
    p95: float
    p99: float

    def line(self) -> str:
        return (
            f"  {self.name:<34} {self.requests:>8,} {self.per_second:>8.1f} "
            f"{self.p50:>7.0f} {self.p95:>7.0f} {self.p99:>7.0f} {self.failures:>7,}"
        )


def _locust(base: str, config: Path, users: int, seconds: int, out: Path) -> list[Row]:
    """Run locust headless for ``seconds``; return its rows, all requests last."""
    subprocess.run(
        [
            sys.executable,
            "-m",
            "locust",
            "-f",
            str(LOCUSTFILE),
            "--headless",
            "--users",
            str(users),
            "--spawn-rate",
            str(users),
            "--run-time",
            f"{seconds}s",
            "--host",
            base,
            "--csv",
            str(out),
            "--only-summary",
            "--loglevel",
            "ERROR",
        ],
        cwd=ROOT,
        env={**os.environ, "LOAD_BENCH_CONFIG": str(config), "PYTHONPATH": str(ROOT)},
        # Locust's own summary would interleave with the figures; its CSV files hold them.
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        check=False,  # locust exits 1 when any request failed: the figures report it
    )
    with open(f"{out}_stats.csv", newline="") as stats:
        rows = [
            Row(
                name=row["Name"],
                requests=int(row["Request Count"]),
                failures=int(row["Failure Count"]),
                per_second=float(row["Requests/s"]),
                p50=float(row["50%"]),
                p95=float(row["95%"]),
                p99=float(row["99%"]),
            )
            for row in csv.DictReader(stats)
        ]
    with open(f"{out}_failures.csv", newline="") as failures:
        for row in csv.DictReader(failures):
            print(f"  error: {row['Name']}: {row['Error']} ({row['Occurrences']}x)", flush=True)
    return sorted(rows, key=lambda row: row.name == "Aggregated")


def _postgres_cpu() -> dict[int, float]:
    """CPU seconds of each process of the local PostgreSQL server (backends and writers)."""
    spent = {}
    for process in psutil.process_iter(["name"]):
        if (process.info["name"] or "").startswith("postgres"):
            try:
                spent[process.pid] = cpu_seconds(process)
            except (psutil.Error, OSError):  # it ended meanwhile
                continue
    return spent


def _costs(config: dict[str, Any], count: int) -> None:
    """CPU per request of each kind of the mix, one request at a time against one sync
    worker: the worker's, and all PostgreSQL processes' (its background writers included)."""
    rng = random.Random()  # new members each run, as the load adds them
    print(
        f"\nCPU per request of each kind of the mix, {count} of each one at a time, 1 sync "
        "worker; PostgreSQL: all its processes. Times in ms.",
        flush=True,
    )
    print(f"  {'request':<26} {'gunicorn':>9} {'postgres':>9} {'wall':>9}", flush=True)
    environment = {"GUNICORN_MAX_REQUESTS": "0"}
    with gunicorn_server(1, environment=environment) as (base, server):
        client = ApiClient(base, config["club"], config["token"])
        [worker] = psutil.Process(server.pid).children()
        for name, _weight, make in MIX:
            plan = [make(config, rng) for _ in range(count + 10)]
            for request in plan[:10]:  # warm-up
                client.call(*request)
            worker_before, postgres_before, started = (
                cpu_seconds(worker),
                _postgres_cpu(),
                time.perf_counter(),
            )
            for request in plan[10:]:
                client.call(*request)
            wall = time.perf_counter() - started
            postgres_after = _postgres_cpu()
            postgres = sum(
                postgres_after[pid] - spent
                for pid, spent in postgres_before.items()
                if pid in postgres_after
            )
            ms = [x / count * 1000 for x in (cpu_seconds(worker) - worker_before, postgres, wall)]
            print(f"  {name:<26} {ms[0]:>9.2f} {ms[1]:>9.2f} {ms[2]:>9.2f}", flush=True)


def run(
    club_id: int, members: int, users: list[int], seconds: int, max_wait: float, costs: int
) -> None:
    first_id = ensure_groups(club_id, members)
    config = _config(club_id, members, first_id, max_wait)
    if costs:
        _costs(config, costs)
    groups = len(config["groups"]) - 1  # without "All members"
    manual = len(config["manual_groups"])
    server = runpy.run_path(str(ROOT / "gunicorn.conf.py"))
    workers, threads = server["workers"], server.get("threads", 1)
    with tempfile.TemporaryDirectory() as work, live_server(workers=None) as base:
        config_path = Path(work, "config.json")
        config_path.write_text(json.dumps(config))
        # Every worker opens its connection and warms its caches before anything is timed.
        _locust(base, config_path, workers * threads, WARM_UP_SECONDS, Path(work, "warm-up"))
        print(
            f"\nMixed load, {seconds} s per run: gunicorn {workers} {server['worker_class']} "
            f"workers x {threads} threads, club of "
            f"{members:,} members, {groups} groups ({manual} manual, {groups - manual} "
            f"automatic; {config['club_automatic']} automatic in the club in all), "
            f"{config['memberships']:,} memberships in the database, think time "
            f"0-{max_wait:g} s; 80% reads, 15% member updates, 5% bulk adds of "
            f"{BULK_SIZE:,} emails. Times in ms.",
            flush=True,
        )
        for count in users:
            # The machine may be shared: its load before the run says how much.
            load = f"{count} users (load avg {os.getloadavg()[0]:.1f})"
            rows = _locust(base, config_path, count, seconds, Path(work, f"users-{count}"))
            print(
                f"{load:<36} {'requests':>8} {'req/s':>8} {'p50':>7} {'p95':>7} "
                f"{'p99':>7} {'errors':>7}",
                flush=True,
            )
            for row in rows:
                print(row.line(), flush=True)
            total = rows[-1]
            report(
                f"p99 at {count} users ({total.failures} errors)",
                total.p99 / 1000,
                "target p99 (0 errors)",
                TARGET_P99,
            )
