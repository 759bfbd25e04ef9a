"""The mixed load's requests: what each kind sends and how often. The locust users
(``bench/locustfile.py``) and the CPU per kind (``--load-costs``) both draw from here."""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

from bench.dataset import email_of, msisdn_of, random_properties

# A request: method, path under the club's /v3/<slug>/, JSON body (None for a GET).
Request = tuple[str, str, Any]
# What draws one request of a kind: the load's configuration and a random source.
Make = Callable[[dict[str, Any], random.Random], Request]

GROUP_LISTS = [
    "members_groups",
    "members_groups?page_no=2",
    "members_groups?per_page=20&sort_by[]=members_count&sort_directions[]=desc",
    "members_groups?automatic=true",
    "members_groups?search=manual%2001",
]


def _member(config: dict[str, Any], rng: random.Random) -> tuple[int, int]:
    """A random member: its id and the number its email and msisdn were made from."""
    n = rng.randint(1, config["members"])
    return config["id_offset"] + n, n


def list_groups(config: dict[str, Any], rng: random.Random) -> Request:
    return "GET", rng.choice(GROUP_LISTS), None


def show_group(config: dict[str, Any], rng: random.Random) -> Request:
    return "GET", f"members_groups/{rng.choice(config['groups'])[0]}", None


def group_members(config: dict[str, Any], rng: random.Random) -> Request:
    group_id, count = rng.choice(config["groups"])
    if rng.random() < 0.5:
        # A client browsing: one of the first pages.
        page = rng.randint(1, max(1, min(20, count // 100)))
        query = f"per_page=100&page_no={page}"
    else:
        # A client walking the whole group with the key-set cursor, from anywhere.
        after = config["id_offset"] + rng.randint(0, config["members"])
        query = f"per_page=100&after_id={after}"
    return "GET", f"members_groups/{group_id}/members?{query}", None


def patch_member(config: dict[str, Any], rng: random.Random) -> Request:
    member_id, _ = _member(config, rng)
    return "PATCH", f"members/{member_id}", {"properties": random_properties(rng)}


def put_member(config: dict[str, Any], rng: random.Random) -> Request:
    member_id, n = _member(config, rng)
    body = {
        "email": email_of(n),
        "msisdn": msisdn_of(n),
        "properties": random_properties(rng),
        "consents": {},
        "sms_status": "enabled",
        "email_status": rng.choice(["enabled", "disabled"]),
        "push_status": "disabled",
        "subunit_ids": [],
        "favorite_stores": [],
    }
    return "PUT", f"members/{member_id}", body


def bulk_add(config: dict[str, Any], rng: random.Random) -> Request:
    group_id = rng.choice(config["manual_groups"])
    numbers = rng.sample(range(1, config["members"] + 1), config["bulk_size"])
    body = {"identifier_type": "email", "identifiers": [email_of(n) for n in numbers]}
    return "POST", f"members_groups/{group_id}/members", body


# Each kind's name in the figures, its weight in the mix and its request.
MIX: list[tuple[str, int, Make]] = [
    ("GET members_groups", 20, list_groups),
    ("GET members_groups/{id}", 25, show_group),
    ("GET .../members", 35, group_members),
    ("PATCH members/{id}", 10, patch_member),
    ("PUT members/{id}", 5, put_member),
    ("POST .../members (bulk)", 5, bulk_add),
]
