"""The import_members command: options, summary, group, reject file and progress output."""

from __future__ import annotations

import csv
import json
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from groups import services
from groups.models import MembersGroup, MembershipEvent
from loyalty.models import Club
from members.management.commands import import_members as command
from members.models import Member
from members.services import create_member
from tests.helpers import assert_consistent, cond

pytestmark = pytest.mark.django_db

MEMBERS = (
    "email,msisdn,first_name,points:number\n"
    "ann@example.com,+47 407 69 126,Ann,10\n"
    "bob@example.com,,Bob,30\n"
    "not-an-email,,X,1\n"
    "carl@example.com,,Carl,5\n"
)


class Terminal(StringIO):
    def isatty(self) -> bool:
        return True


def members_file(tmp_path: Path, text: str = MEMBERS, name: str = "members.csv") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def import_(*args: object, stdout: StringIO | None = None) -> str:
    out = stdout or StringIO()
    call_command("import_members", *map(str, args), stdout=out)
    return out.getvalue()


def test_import_members_creates_and_updates_and_sums_up(club: Club, tmp_path: Path) -> None:
    create_member(club=club, source="api", email="carl@example.com", properties={"x": "1"})

    output = import_(club.slug, members_file(tmp_path))

    assert "Created 2, updated 1, unchanged 0, rejected 1 in " in output
    assert "rows/s" in output
    assert "Rejected rows:\n  line 4: email 'not-an-email' is not a valid email address" in output
    assert Member.objects.get(club=club, email="carl@example.com").properties == {
        "x": "1",
        "first_name": "Carl",
        "points": 5,
    }


def test_update_by_msisdn_only_updates(club: Club, tmp_path: Path) -> None:
    import_(club.slug, members_file(tmp_path))
    path = members_file(tmp_path, "msisdn,email\n4740769126,ann@work.example\n4799999999,x@y.io\n")

    output = import_(club.slug, path, "--update-by", "msisdn", "--mode", "update")

    assert "Created 0, updated 1, unchanged 0, rejected 1" in output
    assert "line 3: no member with this msisdn" in output
    assert Member.objects.filter(club=club, email="ann@work.example").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("nowhere", "{file}"), "No club with the slug 'nowhere'."),
        (("{club}", "{missing}"), "No file "),
        (("{club}", "{file}", "--group", "999999"), "No group 999999 in the club red-club."),
        (("{club}", "{file}", "--batch-size", "0"), "--batch-size must be positive."),
    ],
)
def test_an_unknown_club_file_or_group_is_a_command_error(
    club: Club, tmp_path: Path, args: tuple[str, ...], message: str
) -> None:
    names = {"club": club.slug, "file": members_file(tmp_path), "missing": tmp_path / "no.csv"}

    with pytest.raises(CommandError, match=message):
        import_(*(arg.format(**names) for arg in args))

    assert not Member.objects.filter(club=club).exists()


def test_a_system_or_automatic_group_is_refused_before_the_file_is_read(
    club: Club, all_members: MembersGroup, tmp_path: Path
) -> None:
    rule = services.create_group(
        club=club, name="Rich", audience_conditions=[cond("number", "points", "gte", 20)]
    )

    for group, kind in ((all_members, "a system"), (rule, "an automatic")):
        with pytest.raises(CommandError, match=f"is {kind} group: only manual groups"):
            import_(club.slug, members_file(tmp_path), "--group", group.pk)

    assert not Member.objects.filter(club=club).exists()


def test_group_gets_every_imported_member_created_updated_or_unchanged(
    club: Club, tmp_path: Path
) -> None:
    group = services.create_group(club=club, name="Spring campaign")
    create_member(
        club=club, source="api", email="carl@example.com", properties={"first_name": "Carl"}
    )
    create_member(club=club, source="api", email="bob@example.com")

    output = import_(club.slug, members_file(tmp_path), "--group", group.pk)
    again = import_(club.slug, members_file(tmp_path), "--group", group.pk)

    assert 'Added 3 members to the group "Spring campaign".' in output
    assert "unchanged 3" in again
    assert 'Added 0 members to the group "Spring campaign".' in again
    assert_consistent(group)
    assert set(group.memberships.values_list("member__email", flat=True)) == {
        "ann@example.com",
        "bob@example.com",
        "carl@example.com",
    }
    events = MembershipEvent.objects.filter(group_id=group.pk)
    assert set(events.values_list("source", "actor")) == {("import", "import_members")}


def test_the_reject_file_has_the_line_the_original_row_and_the_reason(
    club: Club, tmp_path: Path
) -> None:
    path = tmp_path / "members.csv"
    path.write_bytes(
        b'email,note\n"bad@",x\nann@example.com,"two\nlines"\nbob@example.com,B\xf8b\n,\n'
    )
    jsonl = members_file(tmp_path, '{"email": "ann@example.com"}\n[1]\n{"email": 5}\n', "m.jsonl")
    rejects = tmp_path / "rejects.csv"

    output = import_(club.slug, path, "--reject-file", rejects)
    with rejects.open(encoding="utf-8", errors="surrogateescape", newline="") as file:
        rows = list(csv.reader(file))
    raw = rejects.read_bytes()
    import_(club.slug, jsonl, "--reject-file", rejects)
    with rejects.open(encoding="utf-8", newline="") as file:
        json_rows = list(csv.reader(file))

    assert f"Rejected rows are in {rejects}." in output
    assert rows == [
        ["line", "row", "reason"],
        ["2", '"bad@",x', "email 'bad@' is not a valid email address"],
        ["5", "bob@example.com,B\udcf8b", "the row is not valid UTF-8"],
    ]
    # Bytes that are not UTF-8 are written back as they were read.
    assert raw.splitlines()[2] == b'5,"bob@example.com,B\xf8b",the row is not valid UTF-8'
    assert json_rows == [
        ["line", "row", "reason"],
        ["2", "[1]", "not a JSON object"],
        ["3", json.dumps({"email": 5}), "email 5 must be a string"],
    ]


def test_a_dry_run_says_what_would_happen_and_writes_nothing(club: Club, tmp_path: Path) -> None:
    group = services.create_group(club=club, name="Spring campaign")

    output = import_(club.slug, members_file(tmp_path), "--dry-run", "--group", group.pk)

    assert "Dry run: nothing was written." in output
    assert "Created 3, updated 0, unchanged 0, rejected 1" in output
    assert 'Added 3 members to the group "Spring campaign".' in output
    assert not Member.objects.filter(club=club).exists()
    assert not MembershipEvent.objects.filter(club=club).exists()
    group.refresh_from_db()
    assert group.members_count == 0


def test_a_file_of_garbage_is_rejected_row_by_row_and_the_command_succeeds(
    club: Club, tmp_path: Path
) -> None:
    path = tmp_path / "photo.jpg"
    path.write_bytes(bytes(range(256)) * 40)

    output = import_(club.slug, path)

    assert "Created 0, updated 0, unchanged 0, rejected " in output
    assert "Traceback" not in output


def test_progress_lines_are_plain_when_the_output_is_not_a_terminal(
    club: Club, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(command, "PROGRESS_INTERVAL", 0.0)

    output = import_(club.slug, members_file(tmp_path), "--batch-size", "2")

    lines = output.splitlines()
    assert lines[0].startswith("2 rows (")
    assert "% of the file): 2 created, 0 updated, 0 unchanged, 0 rejected; " in lines[0]
    assert lines[1].startswith("4 rows (100% of the file): 3 created, 0 updated, 0 unchanged, ")
    assert "rows/s, about 0:00:00 left" in lines[1]
    assert "\r" not in output


def test_a_terminal_gets_a_progress_bar(club: Club, tmp_path: Path) -> None:
    output = import_(club.slug, members_file(tmp_path), stdout=Terminal())

    assert "Importing: 100%" in output
    assert "\r" in output
    assert "Created 3, updated 0, unchanged 0, rejected 1" in output
