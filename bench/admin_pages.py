"""Issue 7: the admin's group list, a group's page and the members list, against the bench
club of 1,000,000 members and its groups, beside the one-second target.

Run by ``python -m bench --only admin``, in ``manage.py shell`` against the bench database;
SHOW_SQL=1 prints each page's slowest statement.
"""

from __future__ import annotations

import os
import statistics
import time

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.db import connection
from django.db.models import Q
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from bench.harness import report
from groups.models import MembersGroup
from loyalty.models import Club
from members.models import Member

USERNAME = "admin-timing-staff"
TARGET_SECONDS = 1.0


def staff_client(club: Club) -> Client:
    user, _created = get_user_model().objects.get_or_create(
        username=USERNAME, defaults={"is_staff": True}
    )
    perms = Permission.objects.filter(
        Q(content_type__app_label__in=["groups", "members", "audiences"])
    )
    user.user_permissions.set(perms)
    club.managers.add(user)
    client = Client()
    client.force_login(user)
    return client


def measure(client: Client, label: str, url: str, runs: int) -> None:
    times = []
    for _ in range(runs):
        with CaptureQueriesContext(connection) as queries:
            started = time.perf_counter()
            response = client.get(url)
            times.append(time.perf_counter() - started)
        assert response.status_code == 200, (url, response.status_code)
    slowest = max(queries.captured_queries, key=lambda q: float(q["time"]))
    sql_ms = sum(float(q["time"]) for q in queries.captured_queries) * 1000
    report(label, statistics.median(times), "target", TARGET_SECONDS)
    print(
        f"    max {max(times) * 1000:.0f} ms, {len(queries.captured_queries)} queries, "
        f"{sql_ms:.0f} ms of SQL, the slowest {float(slowest['time']) * 1000:.0f} ms"
    )
    if os.environ.get("SHOW_SQL"):
        print("   ", slowest["sql"][:400])


def main(club_slug: str = "bench", runs: int = 5) -> None:
    club = Club.objects.get(slug=club_slug)
    groups = MembersGroup.objects.filter(club=club)
    print(
        f"club {club.slug}: {Member.objects.filter(club=club).count():,} members, "
        f"{groups.count()} groups"
    )
    client = staff_client(club)
    largest = groups.order_by("-members_count").first()
    automatic = groups.filter(automatic=True, system=False).order_by("-members_count").first()
    smallest = groups.filter(members_count__gt=0).order_by("members_count").first()
    member = Member.objects.filter(club=club).order_by("-pk").first()
    group_list = reverse("admin:groups_membersgroup_changelist")
    members_list = reverse("admin:members_member_changelist")
    pages = [
        ("group list", group_list),
        ("group list, page 2", f"{group_list}?p=2"),
        ("group list, search", f"{group_list}?q=a"),
        (f"group page: {largest} ({largest.members_count:,})", _change(largest)),
    ]
    if automatic is not None:
        pages.append((f"group page: {automatic} ({automatic.members_count:,})", _change(automatic)))
    pages += [
        ("members list", members_list),
        ("members list, page 500", f"{members_list}?p=500"),
        ("members list, by email", f"{members_list}?q={member.email or member.msisdn}"),
        (f"members list, group {largest.pk}", f"{members_list}?group={largest.pk}"),
    ]
    if smallest is not None:
        pages.append(
            (
                f"members list, group {smallest.pk} ({smallest.members_count:,})",
                f"{members_list}?group={smallest.pk}",
            )
        )
    pages.append(("member page", reverse("admin:members_member_change", args=[member.pk])))
    for label, url in pages:
        measure(client, label, url, runs)


def _change(group: MembersGroup) -> str:
    return reverse("admin:groups_membersgroup_change", args=[group.pk])
