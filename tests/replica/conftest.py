"""The real streaming replica ``make test`` starts for this folder (scripts/test): its data
folder, the server binaries and the user it runs as come in TEST_REPLICA_PGDATA,
TEST_PG_BIN and TEST_PG_USER (when the tests run as root)."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest
from django.db import DatabaseError, connections

from loyalty import db_routing as routers
from loyalty.db_routing import REPLICA


class Standby:
    """Stop, start, pause and resume the replica's server."""

    def __init__(self) -> None:
        self.data = os.environ["TEST_REPLICA_PGDATA"]
        self.pg_ctl = os.path.join(os.environ["TEST_PG_BIN"], "pg_ctl")
        user = os.environ.get("TEST_PG_USER")
        self.as_user = ["runuser", "-u", user, "--"] if user else []

    def _pg_ctl(self, *args: str) -> None:
        # From /, which the server's user can always enter.
        subprocess.run(
            [*self.as_user, self.pg_ctl, "-D", self.data, "-w", "-t", "60", *args],
            cwd="/",
            check=True,
            capture_output=True,
        )

    def stop(self) -> None:
        connections[REPLICA].close()
        self._pg_ctl("-m", "fast", "stop")

    def start(self) -> None:
        self._pg_ctl("-l", os.path.join(self.data, "server.log"), "start")
        # Its connection is tried again now, not after the router's pause.
        routers._replica_down_until = 0.0

    def _replay(self, function: str) -> None:
        with connections[REPLICA].cursor() as cursor:
            cursor.execute(f"SELECT {function}()")

    def pause_replay(self) -> None:
        self._replay("pg_wal_replay_pause")

    def resume_replay(self) -> None:
        self._replay("pg_wal_replay_resume")


@pytest.fixture
def standby(settings: Any) -> Iterator[Standby]:
    """The replica, running and replaying again once the test is over."""
    settings.DATABASE_ROUTERS = ["loyalty.db_routing.ReplicaRouter"]
    server = Standby()
    yield server
    try:
        server.resume_replay()
    except DatabaseError:
        # Left stopped by a failed test: starting it also resumes replaying.
        server.start()
