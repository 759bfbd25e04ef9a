"""Assertions and payload builders shared by the tests."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from io import StringIO
from pathlib import Path
from typing import Any

from django.core.management import call_command
from django.db import DEFAULT_DB_ALIAS, connections

from groups.models import EventKind, MembersGroup, Membership, MembershipEvent
from loyalty.models import Club

PROJECT = Path(__file__).resolve().parents[1]


def assert_consistent(group: MembersGroup) -> None:
    """The stored count equals the rows, and the events replay to the rows."""
    group.refresh_from_db()
    rows = set(Membership.objects.filter(group=group).values_list("member_id", flat=True))
    assert group.members_count == len(rows)
    replayed: set[int] = set()
    for kind, member_id in (
        MembershipEvent.objects.filter(group_id=group.pk)
        .order_by("created_at", "id")
        .values_list("kind", "member_id")
    ):
        if kind == EventKind.JOINED:
            assert member_id not in replayed
            replayed.add(member_id)
        else:
            replayed.remove(member_id)
    assert replayed == rows


def cond(type_: str, field: str, operator: str, value: Any = None) -> dict[str, Any]:
    return {
        "condition_group": "member_properties",
        "type": type_,
        "field": field,
        "operator": operator,
        "value": value,
    }


def in_groups(*ids: int) -> dict[str, Any]:
    return cond("array", "members_group_ids", "any", list(ids))


def member_form(club: Club, **fields: Any) -> dict[str, Any]:
    """A complete member form, as the admin's add and change pages post it."""
    return {
        "club": club.pk,
        "email": "",
        "msisdn": "",
        "sms_status": "disabled",
        "email_status": "enabled",
        "push_status": "disabled",
        "properties": '{"first_name": "Ann"}',
        "consents": "{}",
        "subunit_ids": "[]",
        "favorite_stores": "[3, 5]",
        **fields,
    }


def command_output(*args: str) -> str:
    """What a management command prints, run in this process (and its test database)."""
    out = StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


def manage_process(env: dict[str, str], *args: str) -> str:
    """Run ``manage.py`` in a process of its own with ``env``; return what it printed."""
    done = subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=PROJECT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout


def wait_for_replica(timeout: float = 30) -> None:
    """Wait until the ``replica`` alias has replayed all the primary committed (at once when
    the alias mirrors the primary itself, as outside the replica pass)."""
    primary, replica = connections[DEFAULT_DB_ALIAS], connections["replica"]
    if primary.vendor != "postgresql":
        return
    with primary.cursor() as cursor:
        cursor.execute("SELECT pg_current_wal_insert_lsn()::text")
        (position,) = cursor.fetchone()
    deadline = time.monotonic() + timeout
    while True:
        with replica.cursor() as cursor:
            cursor.execute(
                "SELECT COALESCE(pg_last_wal_replay_lsn() >= %s::pg_lsn, true)", [position]
            )
            if cursor.fetchone()[0]:
                return
        assert time.monotonic() < deadline, f"the replica did not replay {position} in {timeout} s"
        time.sleep(0.02)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def runserver(env: dict[str, str]) -> Iterator[tuple[int, int]]:
    """``manage.py runserver`` (one process, no reloader) with ``env`` on a free port, once
    it accepts connections; yield the port and the process id, stop it on exit."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "manage.py", "runserver", "--noreload", f"127.0.0.1:{port}"],
        cwd=PROJECT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        for _ in range(300):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.05)
        yield port, process.pid
    finally:
        process.terminate()
        process.wait(timeout=10)
