"""A PostgreSQL database with a club of N members, loaded once with COPY and reused."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parent.parent
BENCH_DATABASE_URL = os.environ.get(
    "BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/members_groups_bench"
)
CLUB_SLUG = "bench"
FIRST_NAMES = ["Ola", "Kari", "Nora", "Emma", "Jakob", "Lucas", "Ingrid", "Aisha", "Mateo", "Yuki"]
LAST_NAMES = ["Nordmann", "Hansen", "Johansen", "Olsen", "Larsen", "Berg", "Haugen", "Khan"]
INTERESTS = ["golf", "food", "fashion", "kids", "sport"]


def random_properties(rng: random.Random) -> dict[str, object]:
    """A member's properties as the benchmarks make them (the rules' fields among them)."""
    return {
        "first_name": rng.choice(FIRST_NAMES),
        "last_name": rng.choice(LAST_NAMES),
        "gender": rng.choice(["female", "male", "other"]),
        "points": rng.randrange(10_000),
        "interests": rng.sample(INTERESTS, 2),
    }


def email_of(n: int) -> str:
    return f"member{n}@bench.example"


def msisdn_of(n: int) -> str:
    return str(4740000000 + n)


def manage(*args: str) -> None:
    env = {**os.environ, "DATABASE_URL": BENCH_DATABASE_URL}
    subprocess.run([sys.executable, str(ROOT / "manage.py"), *args], check=True, env=env)


def ensure_database() -> None:
    base, name = BENCH_DATABASE_URL.rsplit("/", 1)
    with psycopg.connect(f"{base}/postgres", autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
            conn.execute(f'CREATE DATABASE "{name}"')
    # Also makes the table of the database cache, where the API's rate-limit counters live.
    manage("migrate", "--verbosity", "0")


def ensure_club(members: int) -> int:
    """Return the bench club's id, loading ``members`` members into it on the first run."""
    ensure_database()
    with psycopg.connect(BENCH_DATABASE_URL) as conn:
        row = conn.execute("SELECT id FROM loyalty_club WHERE slug = %s", [CLUB_SLUG]).fetchone()
        if row:
            have = conn.execute(
                "SELECT count(*) FROM members_member WHERE club_id = %s", [row[0]]
            ).fetchone()[0]
            if have == members:
                return int(row[0])
    manage(
        "shell", "-c", "from loyalty.models import Club; Club.objects.filter(slug='bench').delete()"
    )
    manage("create_club", CLUB_SLUG, "--name", "Benchmark club")
    with psycopg.connect(BENCH_DATABASE_URL) as conn:
        club_id = conn.execute(
            "SELECT id FROM loyalty_club WHERE slug = %s", [CLUB_SLUG]
        ).fetchone()[0]
        started = time.perf_counter()
        _copy_members(conn, club_id, members)
        _fill_all_members(conn, club_id)
        conn.execute("ANALYZE")
        print(f"loaded {members:,} members in {time.perf_counter() - started:.1f} s", flush=True)
    return int(club_id)


def _copy_members(conn: psycopg.Connection, club_id: int, members: int) -> None:
    rng = random.Random(7)
    now = datetime.now(UTC)
    columns = (
        "club_id, email, msisdn, properties, consents, sms_status, email_status, push_status, "
        "subunit_ids, favorite_stores, created_at, updated_at"
    )
    with conn.cursor() as cur, cur.copy(f"COPY members_member ({columns}) FROM STDIN") as copy:
        for n in range(1, members + 1):
            created = now - timedelta(seconds=rng.randrange(2 * 365 * 86400))
            properties = random_properties(rng)
            copy.write_row(
                (
                    club_id,
                    email_of(n),
                    msisdn_of(n),
                    json.dumps(properties),
                    "{}",
                    "enabled",
                    "enabled",
                    "disabled",
                    "[]",
                    "[]",
                    created,
                    created,
                )
            )


def _fill_all_members(conn: psycopg.Connection, club_id: int) -> None:
    """Put every member in "All members", with events and count, as the services would."""
    group_id = conn.execute(
        "SELECT id FROM groups_membersgroup WHERE club_id = %s AND system_key = 'all_members'",
        [club_id],
    ).fetchone()[0]
    conn.execute(
        "INSERT INTO groups_membership (club_id, group_id, member_id, joined_at) "
        "SELECT club_id, %s, id, created_at FROM members_member WHERE club_id = %s ORDER BY id",
        [group_id, club_id],
    )
    conn.execute(
        "INSERT INTO groups_membershipevent "
        "(club_id, group_id, member_id, kind, source, actor, created_at) "
        "SELECT club_id, group_id, member_id, 'joined', 'import', 'bench', joined_at "
        "FROM groups_membership WHERE club_id = %s AND group_id = %s",
        [club_id, group_id],
    )
    conn.execute(
        "UPDATE groups_membersgroup SET members_count = "
        "(SELECT count(*) FROM groups_membership WHERE group_id = %s) WHERE id = %s",
        [group_id, group_id],
    )
