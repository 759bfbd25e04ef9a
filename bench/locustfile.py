"""Locust users of the mixed-load benchmark (``bench/load.py`` writes their configuration).

Each user repeats, at random, the requests of ``bench.load_mix.MIX`` by their weights: 80%
reads (list groups, show a group, a page of a group's members), 15% member updates (PATCH
and PUT of a member's properties) and 5% bulk adds of 1,000 emails to a manual group. The
run's club, token and groups are in the JSON file ``LOAD_BENCH_CONFIG`` names; ``bench``
must be importable (PYTHONPATH).
"""

from __future__ import annotations

import json
import os
import random
from pathlib import Path
from typing import Any

from locust import FastHttpUser, between

from bench.load_mix import MIX, Make

CONFIG: dict[str, Any] = json.loads(Path(os.environ["LOAD_BENCH_CONFIG"]).read_text())
RNG = random.Random()


def _task(name: str, make: Make) -> Any:
    def task(user: ApiUser) -> None:
        method, path, body = make(CONFIG, RNG)
        data = None if body is None else json.dumps(body)
        user.client.request(method, user.root + path, name=name, headers=user.headers, data=data)

    return task


class ApiUser(FastHttpUser):
    wait_time = between(0, CONFIG["max_wait"])
    tasks = {_task(name, make): weight for name, weight, make in MIX}

    def on_start(self) -> None:
        self.root = f"/v3/{CONFIG['club']}/"
        self.headers = {
            "X-Client-Authorization": CONFIG["token"],
            "X-User-Agent": "bench-load/1.0",
            "X-Product-Name": "members-groups-bench",
            "Content-Type": "application/json",
        }
