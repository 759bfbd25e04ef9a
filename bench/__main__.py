"""Run the benchmarks: ``python -m bench [--members N]`` (PostgreSQL, see bench/README.md)."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

from bench import api_bulk, automatic, imports, load, requests
from bench.dataset import BENCH_DATABASE_URL, ROOT, ensure_club


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--members", type=int, default=1_000_000)
    parser.add_argument("--identifiers", type=int, default=100_000)
    parser.add_argument("--naive-sample", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--groups", type=int, default=100)
    parser.add_argument("--updates", type=int, default=30)
    parser.add_argument(
        "--only",
        choices=[
            "api",
            "automatic",
            "imports",
            "load",
            "admin",
            "ledger",
            "webhooks",
            "pages",
            "requests",
        ],
    )
    parser.add_argument("--import-members", type=int, default=1_000_000)
    parser.add_argument(
        "--load-users",
        type=lambda value: [int(n) for n in value.split(",")],
        default=[8, 16, 32],
        help="Comma-separated numbers of simulated users, one load run each.",
    )
    parser.add_argument("--load-seconds", type=int, default=60)
    parser.add_argument(
        "--load-costs",
        type=int,
        default=0,
        help="Before the load, measure the CPU of N requests of each kind of the mix.",
    )
    parser.add_argument(
        "--load-wait", type=float, default=1.0, help="Most think time of a user, in seconds."
    )
    parser.add_argument(
        "--requests", type=int, default=300, help="Requests of each kind (--only requests)."
    )
    parser.add_argument(
        "--requests-top",
        type=int,
        default=0,
        help="Also print cProfile's N functions of most own time for each kind of request.",
    )
    parser.add_argument(
        "--requests-phases",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="Profile the requests by phase after measuring them (--only requests).",
    )
    parser.add_argument(
        "--requests-baseline",
        type=Path,
        help="Another checkout of the project (with its .venv), e.g. of main, served beside "
        "this one: its CPU per request is printed as the baseline (--only requests).",
    )
    parser.add_argument("--work-dir", type=Path, default=Path("/tmp/members-groups-bench"))
    args = parser.parse_args()
    if args.only in (None, "imports"):
        imports.run(args.import_members, args.work_dir)
        if args.only:
            return
    club_id = ensure_club(args.members)
    if args.only in (None, "api"):
        api_bulk.run(club_id, args.members, args.identifiers, args.naive_sample, args.runs)
    if args.only in (None, "automatic"):
        automatic.run(club_id, args.members, args.groups, args.updates)
    if args.only in (None, "load"):
        load.run(
            club_id,
            args.members,
            args.load_users,
            args.load_seconds,
            args.load_wait,
            args.load_costs,
        )
    if args.only in (None, "requests"):
        requests.run(
            club_id,
            args.members,
            args.requests,
            args.requests_top,
            args.requests_phases,
            args.requests_baseline,
        )
    if args.only in (None, "admin"):
        # In its own process: it runs Django against the bench database.
        django_shell("from bench.admin_pages import main; main()")
    if args.only in (None, "ledger"):
        django_shell(f"from bench.ledger import main; main(runs={args.runs})")
    if args.only in (None, "pages"):
        django_shell(f"from bench.pages import main; main(runs={args.runs})")
    if args.only in (None, "webhooks"):
        django_shell("from bench.webhooks import main; main()")


def django_shell(code: str) -> None:
    """Run ``code`` in ``manage.py shell`` against the bench database."""
    env = {**os.environ, "DATABASE_URL": BENCH_DATABASE_URL, "LOG_LEVEL": "WARNING"}
    subprocess.run(
        [sys.executable, str(ROOT / "manage.py"), "shell", "-c", code], env=env, check=True
    )


if __name__ == "__main__":
    main()
