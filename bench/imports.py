"""Issue 5: importing 1,000,000 members from CSV (and again, unchanged) beside a bare COPY of
the same file, and import_group_members with 1,000,000 emails beside the raw-SQL floor."""

from __future__ import annotations

import csv
import os
import random
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg

from bench.api_bulk import FLOOR_ADD
from bench.dataset import (
    BENCH_DATABASE_URL,
    FIRST_NAMES,
    LAST_NAMES,
    ROOT,
    ensure_database,
    manage,
)
from bench.harness import median_seconds, report

CLUB_SLUG = "bench-import"
FLOOR_SLUG = "bench-import-floor"
COLUMNS = ["email", "msisdn", "first_name", "last_name", "gender", "language", "birthday"]


def write_csv(path: Path, members: int) -> None:
    rng = random.Random(5)
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(COLUMNS)
        for n in range(1, members + 1):
            writer.writerow(
                [
                    f"person{n}@import.example",
                    str(4750000000 + n),
                    rng.choice(FIRST_NAMES),
                    rng.choice(LAST_NAMES),
                    rng.choice(["female", "male", "other"]),
                    rng.choice(["nb", "sv", "en"]),
                    f"{rng.randrange(1950, 2005)}-{rng.randrange(1, 13):02d}-"
                    f"{rng.randrange(1, 29):02d}",
                ]
            )


def bare_copy_seconds(conn: psycopg.Connection, path: Path, runs: int = 3) -> float:
    """COPY the file into a table of the same columns with the same unique keys: the median
    of ``runs`` runs, each into a new table (one run swung from 3.3 s to 6 s on this machine,
    the first after the file was written most of all)."""

    def create() -> None:
        conn.execute("DROP TABLE IF EXISTS bench_copy")
        conn.execute(
            "CREATE TABLE bench_copy (club_id bigint, email text, msisdn text, first_name text, "
            "last_name text, gender text, language text, birthday text)"
        )
        conn.execute("CREATE UNIQUE INDEX ON bench_copy (club_id, email)")
        conn.execute("CREATE UNIQUE INDEX ON bench_copy (club_id, msisdn)")

    def copy_file() -> None:
        with (
            conn.cursor() as cursor,
            cursor.copy(
                "COPY bench_copy (email, msisdn, first_name, last_name, gender, language, "
                "birthday) FROM STDIN WITH (FORMAT csv, HEADER true)"
            ) as copy,
            path.open("rb") as handle,
        ):
            while chunk := handle.read(1 << 20):
                copy.write(chunk)

    elapsed = median_seconds(copy_file, runs=runs, setup=create)
    conn.execute("DROP TABLE bench_copy")
    return elapsed


def write_floor_seconds(
    conn: psycopg.Connection, club_id: int, path: Path, *, lean: bool = False
) -> tuple[float, dict[str, float]]:
    """The rows an import of the file must write, by hand-written set-based SQL: the file
    COPY-staged, then its members, their "All members" memberships and join events and
    the group's count, in one transaction (no validation, no matching, no batches).
    ``lean``: the members alone, as a data model whose "All members" holds every member of
    the club without a row each would write them.

    Return the total and the seconds of each step; the commit runs the deferred checks of
    the members' foreign key to their club."""
    group_id = conn.execute(
        "SELECT id FROM groups_membersgroup WHERE club_id = %s AND system_key = 'all_members'",
        [club_id],
    ).fetchone()[0]
    steps: dict[str, float] = {}
    started = last = time.perf_counter()

    def step(name: str) -> None:
        nonlocal last
        now = time.perf_counter()
        steps[name] = now - last
        last = now

    with conn.transaction(), conn.cursor() as cursor:
        cursor.execute(
            "CREATE TEMP TABLE bench_staged (email text, msisdn text, first_name text, "
            "last_name text, gender text, language text, birthday text) ON COMMIT DROP"
        )
        with (
            cursor.copy("COPY bench_staged FROM STDIN WITH (FORMAT csv, HEADER true)") as copy,
            path.open("rb") as handle,
        ):
            while chunk := handle.read(1 << 20):
                copy.write(chunk)
        step("file staged by COPY")
        cursor.execute(
            "INSERT INTO members_member (club_id, created_at, updated_at, email, msisdn, "
            "properties, consents, sms_status, email_status, push_status, subunit_ids, "
            "favorite_stores) SELECT %(club)s, now(), now(), email, '+' || msisdn, "
            "jsonb_build_object('first_name', first_name, 'last_name', last_name, 'gender', "
            "gender, 'language', language, 'birthday', birthday), '{}', 'none', 'none', "
            "'none', '[]', '[]' FROM bench_staged",
            {"club": club_id},
        )
        step("members")
        if not lean:
            memberships_and_events(cursor, club_id, group_id, step)
    step("commit")
    return time.perf_counter() - started, steps


def memberships_and_events(
    cursor: psycopg.Cursor[Any], club_id: int, group_id: int, step: Callable[[str], None]
) -> None:
    """The floor's "All members" rows: a membership and a join event per member, the count."""
    cursor.execute(
        "INSERT INTO groups_membership (club_id, group_id, member_id, joined_at) "
        "SELECT %(club)s, %(group)s, id, now() FROM members_member "
        "WHERE club_id = %(club)s ORDER BY id",
        {"club": club_id, "group": group_id},
    )
    step("'All members' memberships")
    cursor.execute(
        "INSERT INTO groups_membershipevent "
        "(club_id, group_id, member_id, kind, source, actor, created_at) "
        "SELECT club_id, group_id, member_id, 'joined', 'system', '', now() "
        "FROM groups_membership WHERE club_id = %(club)s AND group_id = %(group)s",
        {"club": club_id, "group": group_id},
    )
    cursor.execute(
        "UPDATE groups_membersgroup SET members_count = %s WHERE id = %s",
        [cursor.rowcount, group_id],
    )
    step("join events and count")


def timed_command(*args: str) -> tuple[float, int | None]:
    """Wall time of a management command and its peak memory in KiB (/usr/bin/time -v)."""
    env = {**os.environ, "DATABASE_URL": BENCH_DATABASE_URL}
    command = [sys.executable, str(ROOT / "manage.py"), *args]
    timer = shutil.which("time", path="/usr/bin")
    if timer:
        command = [timer, "-v", *command]
    started = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - started
    if done.returncode:
        raise SystemExit(f"{' '.join(args)} failed:\n{done.stderr[-3000:]}")
    peak = re.search(r"Maximum resident set size \(kbytes\): (\d+)", done.stderr)
    return elapsed, int(peak.group(1)) if peak else None


def fresh_club(conn: psycopg.Connection, slug: str) -> int:
    """An empty club, dropping the last run's with set-based deletes."""
    row = conn.execute("SELECT id FROM loyalty_club WHERE slug = %s", [slug]).fetchone()
    if row:
        for table in (
            "groups_membershipevent",
            "groups_membership",
            "groups_membersgroup",
            "audiences_audience",
            "members_member",
            "loyalty_apitoken",
        ):
            if table == "members_member":
                # Each member's cascade probe of the memberships would otherwise walk the
                # club's deleted ones still in the index (half an hour for 1,000,000), as
                # statistics taken while the club was empty let it.
                conn.execute("VACUUM ANALYZE groups_membership, groups_membershipevent")
                conn.execute("ANALYZE members_member")
            conn.execute(f"DELETE FROM {table} WHERE club_id = %s", [row[0]])
        conn.execute("DELETE FROM loyalty_club WHERE id = %s", [row[0]])
    manage("create_club", slug, "--name", "Import benchmark")
    return int(conn.execute("SELECT id FROM loyalty_club WHERE slug = %s", [slug]).fetchone()[0])


def new_group(conn: psycopg.Connection, club_id: int, name: str) -> int:
    manage(
        "shell",
        "-c",
        "from groups.services import create_group; from loyalty.models import Club; "
        f"create_group(club=Club.objects.get(pk={club_id}), name={name!r})",
    )
    return int(
        conn.execute(
            "SELECT max(id) FROM groups_membersgroup WHERE club_id = %s AND name = %s",
            [club_id, name],
        ).fetchone()[0]
    )


def run(members: int, work: Path) -> None:
    work.mkdir(parents=True, exist_ok=True)
    path = work / f"members-{members}.csv"
    if not path.exists():
        write_csv(path, members)
    emails = work / f"emails-{members}.txt"
    if not emails.exists():
        emails.write_text("".join(f"person{n}@import.example\n" for n in range(1, members + 1)))
    ensure_database()
    conn = psycopg.connect(BENCH_DATABASE_URL, autocommit=True)
    club_id = fresh_club(conn, CLUB_SLUG)

    copy_s = bare_copy_seconds(conn, path)
    first_s, first_peak = timed_command("import_members", CLUB_SLUG, str(path))
    again_s, again_peak = timed_command("import_members", CLUB_SLUG, str(path))
    floor_s, floor_steps = write_floor_seconds(conn, fresh_club(conn, FLOOR_SLUG), path)
    lean_s, lean_steps = write_floor_seconds(conn, fresh_club(conn, FLOOR_SLUG), path, lean=True)
    fresh_club(conn, FLOOR_SLUG)
    copy_rate = members / copy_s

    print(f"\nImporting a CSV of {members:,} members (PostgreSQL), rates in rows/s")
    print(f"bare COPY of the same file (median of 3): {copy_s:.2f} s = {copy_rate:,.0f} rows/s")
    print(
        f"the import's own writes by set-based SQL: {floor_s:.2f} s = "
        f"{members / floor_s:,.0f} rows/s = {copy_s / floor_s:.1%} of the bare COPY's rate"
    )
    for name, seconds in floor_steps.items():
        print(f"    {name:<36} {seconds:6.2f} s = {seconds / copy_s:5.2f}x the bare COPY")
    report("import into an empty club", first_s, "its writes by set-based SQL", floor_s)
    steps = ", ".join(f"{name} {seconds:.2f} s" for name, seconds in lean_steps.items())
    report("  the members alone by set-based SQL", lean_s, "the writes of today", floor_s)
    print(f"    (a model without a row per member in 'All members': {steps})")
    for label, seconds, peak, floor in (
        ("import into an empty club", first_s, first_peak, 0.50),
        ("re-import, unchanged", again_s, again_peak, 0.25),
    ):
        rate = members / seconds
        memory = f", peak memory {peak / 1024:.0f} MB" if peak else ""
        print(
            f"{label:<48} {rate:>10,.0f} rows/s   bare COPY {copy_rate:>10,.0f} rows/s   "
            f"{rate / copy_rate:6.1%} of it (target >= {floor:.0%}){memory}"
        )

    command_group = new_group(conn, club_id, "bench import command")
    floor_group = new_group(conn, club_id, "bench import floor")
    group_s, group_peak = timed_command(
        "import_group_members", CLUB_SLUG, str(command_group), str(emails)
    )
    started = time.perf_counter()
    conn.execute(
        FLOOR_ADD,
        {
            "club": club_id,
            "group": floor_group,
            "emails": [line for line in emails.read_text().splitlines() if line],
        },
    )
    floor_s = time.perf_counter() - started
    memory = f" (peak memory {group_peak / 1024:.0f} MB)" if group_peak else ""
    print(f"\nimport_group_members with {members:,} emails{memory}")
    report("import_group_members (command)", group_s, "raw SQL floor", floor_s)
