"""Locust users of the mixed-load benchmark (``bench/load.py`` writes their configuration).

Each user repeats, at random: 80% reads (list groups, show a group, a page of a group's
members), 15% member updates (PATCH and PUT of a member's properties) and 5% bulk adds of
1,000 emails to a manual group. The run's club, token and groups are in the JSON file
``LOAD_BENCH_CONFIG`` names; ``bench`` must be importable (PYTHONPATH).
"""

from __future__ import annotations

import json
import os
import random
from pathlib import Path
from typing import Any

from locust import FastHttpUser, between, task

from bench.dataset import email_of, msisdn_of, random_properties

RNG = random.Random()

CONFIG: dict[str, Any] = json.loads(Path(os.environ["LOAD_BENCH_CONFIG"]).read_text())
GROUP_LISTS = [
    "members_groups",
    "members_groups?page_no=2",
    "members_groups?per_page=20&sort_by[]=members_count&sort_directions[]=desc",
    "members_groups?automatic=true",
    "members_groups?search=manual%2001",
]


class ApiUser(FastHttpUser):
    wait_time = between(0, CONFIG["max_wait"])

    def on_start(self) -> None:
        self.root = f"/v3/{CONFIG['club']}/"
        self.headers = {
            "X-Client-Authorization": CONFIG["token"],
            "X-User-Agent": "bench-load/1.0",
            "X-Product-Name": "members-groups-bench",
            "Content-Type": "application/json",
        }

    def _member(self) -> tuple[int, int]:
        """A random member: its id and the number its email and msisdn were made from."""
        n = random.randint(1, CONFIG["members"])
        return CONFIG["id_offset"] + n, n

    def _call(self, method: str, path: str, name: str, body: Any = None) -> None:
        data = None if body is None else json.dumps(body)
        self.client.request(method, self.root + path, name=name, headers=self.headers, data=data)

    @task(20)
    def list_groups(self) -> None:
        self._call("GET", random.choice(GROUP_LISTS), "GET members_groups")

    @task(25)
    def show_group(self) -> None:
        group_id = random.choice(CONFIG["groups"])[0]
        self._call("GET", f"members_groups/{group_id}", "GET members_groups/{id}")

    @task(35)
    def group_members(self) -> None:
        group_id, count = random.choice(CONFIG["groups"])
        if random.random() < 0.5:
            # A client browsing: one of the first pages.
            page = random.randint(1, max(1, min(20, count // 100)))
            query = f"per_page=100&page_no={page}"
        else:
            # A client walking the whole group with the key-set cursor, from anywhere.
            after = CONFIG["id_offset"] + random.randint(0, CONFIG["members"])
            query = f"per_page=100&after_id={after}"
        self._call("GET", f"members_groups/{group_id}/members?{query}", "GET .../members")

    def _properties(self) -> dict[str, Any]:
        return random_properties(RNG)

    @task(10)
    def patch_member(self) -> None:
        member_id, _ = self._member()
        body = {"properties": self._properties()}
        self._call("PATCH", f"members/{member_id}", "PATCH members/{id}", body)

    @task(5)
    def put_member(self) -> None:
        member_id, n = self._member()
        body = {
            "email": email_of(n),
            "msisdn": msisdn_of(n),
            "properties": self._properties(),
            "consents": {},
            "sms_status": "enabled",
            "email_status": random.choice(["enabled", "disabled"]),
            "push_status": "disabled",
            "subunit_ids": [],
            "favorite_stores": [],
        }
        self._call("PUT", f"members/{member_id}", "PUT members/{id}", body)

    @task(5)
    def bulk_add(self) -> None:
        group_id = random.choice(CONFIG["manual_groups"])
        numbers = random.sample(range(1, CONFIG["members"] + 1), CONFIG["bulk_size"])
        body = {
            "identifier_type": "email",
            "identifiers": [email_of(n) for n in numbers],
        }
        self._call("POST", f"members_groups/{group_id}/members", "POST .../members (bulk)", body)
