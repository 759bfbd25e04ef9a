"""export_group_members streams a group's exact members to CSV."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from groups import services
from groups.models import MembersGroup
from loyalty.models import Club
from tests.factories import MemberFactory
from tests.helpers import PROJECT, manage_process

pytestmark = pytest.mark.django_db


def test_the_file_holds_exactly_the_groups_members_in_id_order(
    club: Club, other_club: Club, tmp_path: Path
) -> None:
    members = [
        MemberFactory(club=club, email=f"m{n}@example.com", properties={"note": 'say "hi", ok'})
        for n in range(7)
    ]
    MemberFactory(club=other_club, email="m0@example.com")
    group = services.create_group(club=club, name="Some")
    services.add_member_ids(group=group, member_ids=[m.pk for m in members[1:6]], source="api")
    services.remove_member_ids(group=group, member_ids=[members[3].pk], source="api")
    path = tmp_path / "out.csv"
    output = io.StringIO()

    call_command("export_group_members", club.slug, str(group.pk), str(path), stdout=output)

    rows = list(csv.DictReader(path.open(newline="")))
    expected = [m for m in members[1:6] if m is not members[3]]
    assert [int(row["id"]) for row in rows] == [m.pk for m in expected]
    assert [row["email"] for row in rows] == [m.email for m in expected]
    assert all(json.loads(row["properties"]) == {"note": 'say "hi", ok'} for row in rows)
    assert all(row["joined_at"].endswith("Z") for row in rows)
    assert "Wrote 4 members of Some" in output.getvalue()


def test_an_empty_group_gives_the_header_only_and_a_missing_group_an_error(
    club: Club, other_club: Club, all_members: MembersGroup, tmp_path: Path
) -> None:
    path = tmp_path / "out.csv"
    call_command("export_group_members", club.slug, str(all_members.pk), str(path))
    assert path.read_bytes() == b"id,email,msisdn,joined_at,properties\n"

    hidden = MembersGroup.objects.get(club=other_club, system_key=all_members.system_key)
    with pytest.raises(CommandError, match=f"No group {hidden.pk} in the club red-club"):
        call_command("export_group_members", club.slug, str(hidden.pk), str(path))


@pytest.mark.django_db(databases=[])
def test_a_reader_that_stops_early_ends_the_export_quietly(tmp_path: Path) -> None:
    # Its own process and database: the pipe must close while the command still writes.
    env = {
        **os.environ,
        "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
        "LOG_LEVEL": "WARNING",
    }

    manage_process(env, "migrate", "-v0")
    manage_process(env, "seed_demo", "--members", "3000")
    group_id = manage_process(
        env,
        "shell",
        "-c",
        "from groups.models import MembersGroup; "
        "print(MembersGroup.objects.get(system_key='all_members').pk)",
    ).split()[-1]
    process = subprocess.Popen(
        [sys.executable, "manage.py", "export_group_members", "demo", group_id, "-"],
        cwd=PROJECT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert process.stdout is not None
    assert process.stderr is not None
    header = process.stdout.readline()
    process.stdout.close()  # like `| head -n 1`
    errors = process.stderr.read().decode()

    assert process.wait(timeout=60) == 0
    assert header.startswith(b"id,")
    assert errors == ""
