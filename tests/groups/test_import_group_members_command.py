"""The import_group_members command: a file of identifiers into a manual group, in batches."""

from __future__ import annotations

import csv
import re
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from groups import services
from groups.management.commands import import_group_members
from groups.models import MembersGroup, Membership, MembershipEvent
from loyalty.models import Club
from members.models import Member
from tests.factories import GroupFactory, MemberFactory
from tests.helpers import assert_consistent, cond, in_groups

pytestmark = pytest.mark.django_db

TOO_LONG = "x" * (csv.field_size_limit() + 1)
UNREADABLE = f"invalid: not valid CSV: field larger than field limit ({csv.field_size_limit()})"


class Terminal(StringIO):
    def isatty(self) -> bool:
        return True


def run(*args: str, stderr: StringIO | None = None) -> str:
    out = StringIO()
    call_command("import_group_members", *args, stdout=out, stderr=stderr or StringIO())
    return out.getvalue()


def write(tmp_path: Path, text: str, name: str = "identifiers.txt", bom: bool = False) -> str:
    path = tmp_path / name
    path.write_bytes(("\ufeff" if bom else "").encode() + text.encode())
    return str(path)


def member_ids(group: MembersGroup) -> set[int]:
    return set(Membership.objects.filter(group=group).values_list("member_id", flat=True))


@pytest.fixture
def group(club: Club) -> MembersGroup:
    return GroupFactory(club=club, name="Red")


@pytest.fixture
def ann(club: Club) -> Member:
    return MemberFactory(club=club, email="ann@example.com", msisdn="4740769126")


@pytest.fixture
def bob(club: Club) -> Member:
    return MemberFactory(club=club, email="bob@example.com", msisdn="4790000001")


def test_a_file_of_emails_adds_its_members_and_reports_every_outcome(
    tmp_path: Path, club: Club, group: MembersGroup, ann: Member, bob: Member
) -> None:
    services.add_member_ids(group=group, member_ids=[bob.pk], source="api")
    path = write(
        tmp_path,
        " ANN@Example.com\n\nbob@example.com\r\nnobody@example.com\nnot an email\n\n",
        bom=True,
    )

    output = run(club.slug, str(group.pk), path)

    assert member_ids(group) == {ann.pk, bob.pk}
    assert "Added 1, already members 1, not found 1, invalid 1." in output
    assert "4 identifiers in " in output
    assert "identifiers/s" in output
    assert "the group 'Red' has 2 members." in output
    event = MembershipEvent.objects.get(group_id=group.pk, member_id=ann.pk)
    assert (event.kind, event.source, event.actor) == (
        "joined",
        "import",
        "command:import_group_members",
    )
    assert_consistent(group)


def test_running_the_same_file_again_changes_nothing(
    tmp_path: Path, club: Club, group: MembersGroup, ann: Member, bob: Member
) -> None:
    path = write(tmp_path, "ann@example.com\nbob@example.com\n")
    run(club.slug, str(group.pk), path)

    output = run(club.slug, str(group.pk), path)

    assert "Added 0, already members 2, not found 0, invalid 0." in output
    assert MembershipEvent.objects.filter(group_id=group.pk).count() == 2
    assert_consistent(group)


def test_remove_takes_the_listed_members_out_and_counts_those_who_were_not_in(
    tmp_path: Path, club: Club, group: MembersGroup, ann: Member, bob: Member
) -> None:
    services.add_member_ids(group=group, member_ids=[ann.pk], source="api")
    path = write(tmp_path, "ann@example.com\nbob@example.com\nnobody@example.com\n")

    output = run(club.slug, str(group.pk), path, "--remove")

    assert member_ids(group) == set()
    assert "Removed 1, not members 1, not found 1, invalid 0." in output
    assert "the group 'Red' has 0 members." in output
    assert_consistent(group)


@pytest.mark.parametrize("delimiter", [",", ";"])
def test_a_csv_column_is_read_by_its_header_name_whatever_the_delimiter(
    tmp_path: Path, club: Club, group: MembersGroup, ann: Member, bob: Member, delimiter: str
) -> None:
    rows = [
        ["name", "phone", "email"],
        ["Ann", "+47 407 69 126", "ann@example.com"],
        ["Nobody", "", ""],
        ["Bob; Jr, the second", "0047 900 00 001", "bob@example.com"],
    ]
    text = StringIO()
    csv.writer(text, delimiter=delimiter).writerows(rows)
    path = write(tmp_path, text.getvalue(), name="members.csv", bom=True)

    output = run(club.slug, str(group.pk), path, "--column", "phone", "--identifier-type", "msisdn")

    assert member_ids(group) == {ann.pk, bob.pk}
    assert "Added 2, already members 0, not found 0, invalid 0." in output
    assert "2 identifiers in " in output


def test_member_ids_can_be_the_identifiers(
    tmp_path: Path, club: Club, group: MembersGroup, ann: Member, bob: Member
) -> None:
    path = write(tmp_path, f"{ann.pk}\n{bob.pk}\n")

    output = run(club.slug, str(group.pk), path, "--identifier-type", "id")

    assert member_ids(group) == {ann.pk, bob.pk}
    assert "Added 2," in output


def test_the_report_lists_not_found_and_invalid_identifiers_with_their_lines(
    tmp_path: Path, club: Club, group: MembersGroup, ann: Member
) -> None:
    path = write(
        tmp_path,
        "ann@example.com\nnobody@example.com\n\nnot an email\nann@example.com\nlost@example.com\n",
    )
    report = tmp_path / "report.csv"

    output = run(club.slug, str(group.pk), path, "--batch-size", "3", "--report", str(report))

    with report.open(newline="") as file:
        assert list(csv.reader(file)) == [
            ["line", "identifier", "reason"],
            ["2", "nobody@example.com", "not found"],
            ["4", "not an email", "invalid: is not a valid email address"],
            ["6", "lost@example.com", "not found"],
        ]
    assert f"Report: {report} (3 identifiers not found or invalid)." in output


def test_each_batch_goes_through_the_bulk_service_and_progress_is_reported_off_a_terminal(
    tmp_path: Path,
    club: Club,
    group: MembersGroup,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    members = [MemberFactory(club=club) for _ in range(5)]
    path = write(tmp_path, "".join(f"{m.email}\n" for m in members))
    monkeypatch.setattr(import_group_members, "PROGRESS_EVERY_SECONDS", 0)
    progress = StringIO()

    output = run(club.slug, str(group.pk), path, "--batch-size", "2", stderr=progress)

    lines = progress.getvalue().splitlines()
    assert [line.split(" lines ")[0] for line in lines] == ["2/5", "4/5", "5/5"]
    assert lines[-1].endswith("added 5, already members 0, not found 0, invalid 0")
    assert "lines/s, about" in lines[0]
    assert "Added 5," in output
    assert member_ids(group) == {m.pk for m in members}
    assert_consistent(group)


def test_on_a_terminal_progress_is_a_bar_with_rate_and_eta(
    tmp_path: Path, club: Club, group: MembersGroup, ann: Member
) -> None:
    path = write(tmp_path, "ann@example.com\n")
    terminal = Terminal()

    run(club.slug, str(group.pk), path, stderr=terminal)

    bar = terminal.getvalue()
    assert "100%" in bar
    assert "lines/s" in bar
    assert re.search(r"\[\d\d:\d\d<\d\d:\d\d, ", bar), "elapsed<remaining"
    assert "added 1" in bar


def test_the_groups_that_depend_on_the_group_follow_each_batch(
    tmp_path: Path, club: Club, group: MembersGroup, ann: Member, bob: Member
) -> None:
    follower = services.create_group(
        club=club,
        name="Red with a phone",
        audience_conditions=[in_groups(group.pk), cond("string", "msisdn", "present")],
    )
    path = write(tmp_path, "ann@example.com\nbob@example.com\n")

    run(club.slug, str(group.pk), path, "--batch-size", "1")

    assert member_ids(follower) == {ann.pk, bob.pk}
    assert_consistent(follower)


@pytest.mark.parametrize(
    ("slug", "which", "message"),
    [
        ("no-such-club", "manual", "No club with the slug 'no-such-club'."),
        (None, "missing", "No group 999999 in the club red-club."),
        (None, "system", "is a system group: only manual groups take members by hand."),
        (None, "automatic", "is an automatic group: only manual groups take members by hand."),
    ],
)
def test_unknown_clubs_and_groups_and_groups_not_edited_by_hand_are_refused_before_reading(
    tmp_path: Path,
    club: Club,
    group: MembersGroup,
    all_members: MembersGroup,
    slug: str | None,
    which: str,
    message: str,
) -> None:
    automatic = services.create_group(
        club=club, name="Gmail", audience_conditions=[cond("string", "email", "match", "@gmail")]
    )
    group_id = {"manual": group.pk, "missing": 999999, "system": all_members.pk}.get(
        which, automatic.pk
    )
    never_read = str(tmp_path / "does-not-exist.txt")

    with pytest.raises(CommandError, match=message):
        run(slug or club.slug, str(group_id), never_read)


def test_an_unknown_column_is_refused_with_nothing_changed(
    tmp_path: Path, club: Club, group: MembersGroup, ann: Member
) -> None:
    path = write(tmp_path, "name,mail\nAnn,ann@example.com\n", name="members.csv")

    with pytest.raises(
        CommandError, match="No column 'email' in the header row \\('name', 'mail'\\)"
    ):
        run(club.slug, str(group.pk), path, "--column", "email")

    assert member_ids(group) == set()


def test_a_file_that_is_not_utf8_is_refused_with_nothing_changed(
    tmp_path: Path, club: Club, group: MembersGroup, ann: Member
) -> None:
    path = tmp_path / "latin1.txt"
    path.write_bytes(b"ann@example.com\nbob@example.com\nj\xf8rn@example.com\n")

    with pytest.raises(CommandError, match="is not UTF-8 \\(line 3\\); nothing was changed"):
        run(club.slug, str(group.pk), str(path), "--batch-size", "1")

    assert member_ids(group) == set()


def test_a_missing_file_is_refused(club: Club, group: MembersGroup, tmp_path: Path) -> None:
    with pytest.raises(CommandError, match="No file "):
        run(club.slug, str(group.pk), str(tmp_path / "nothing.txt"))


# Malformed files: each bad record is a reason, never a traceback.


@pytest.mark.parametrize(
    "bad_row",
    [f"Xavier,{TOO_LONG}@example.com", f'"{TOO_LONG}",xavier@example.com'],
    ids=["in the column", "in another column"],
)
def test_a_field_over_the_csv_size_limit_is_an_invalid_identifier_and_the_rest_is_imported(
    tmp_path: Path, club: Club, group: MembersGroup, ann: Member, bob: Member, bad_row: str
) -> None:
    path = write(tmp_path, f"name,email\nAnn,ann@example.com\n{bad_row}\nBob,bob@example.com\n")
    report = tmp_path / "report.csv"

    output = run(
        club.slug, str(group.pk), path, "--column", "email", "--batch-size", "1",
        "--report", str(report),
    )  # fmt: skip

    assert member_ids(group) == {ann.pk, bob.pk}
    assert "Added 2, already members 0, not found 0, invalid 1." in output
    assert "3 identifiers in " in output
    with report.open(newline="") as file:
        assert list(csv.reader(file)) == [["line", "identifier", "reason"], ["3", "", UNREADABLE]]
    assert_consistent(group)


def test_the_result_is_that_of_the_file_without_the_unreadable_row(
    tmp_path: Path, club: Club, ann: Member, bob: Member
) -> None:
    with_it, without_it = GroupFactory(club=club), GroupFactory(club=club)
    rows = ["email", "ann@example.com", TOO_LONG, "nobody@example.com", "bob@example.com"]
    full = write(tmp_path, "\n".join(rows) + "\n", name="full.csv")
    cut = write(tmp_path, "\n".join(rows[:2] + rows[3:]) + "\n", name="cut.csv")

    run(club.slug, str(with_it.pk), full, "--column", "email", "--batch-size", "2")
    run(club.slug, str(without_it.pk), cut, "--column", "email", "--batch-size", "2")

    assert member_ids(with_it) == member_ids(without_it) == {ann.pk, bob.pk}


def test_a_header_over_the_csv_size_limit_is_refused_with_nothing_changed(
    tmp_path: Path, club: Club, group: MembersGroup, ann: Member
) -> None:
    path = write(tmp_path, f"email,{TOO_LONG}\nann@example.com,1\n")

    with pytest.raises(
        CommandError,
        match=r"The header row is not valid CSV: field larger than field limit \(\d+\); "
        "nothing was changed",
    ):
        run(club.slug, str(group.pk), path, "--column", "email")

    assert member_ids(group) == set()


def test_a_column_is_found_whatever_its_case_unless_two_names_differ_only_in_case(
    tmp_path: Path, club: Club, group: MembersGroup, ann: Member
) -> None:
    path = write(tmp_path, "Name,E-Mail\nAnn,ann@example.com\n", name="members.csv")
    twice = write(tmp_path, "e-mail,E-Mail\nann@example.com,x\n", name="twice.csv")

    run(club.slug, str(group.pk), path, "--column", "e-mail")

    assert member_ids(group) == {ann.pk}
    with pytest.raises(CommandError, match="More than one column named 'E-MAIL'"):
        run(club.slug, str(group.pk), twice, "--column", "E-MAIL")
    # The exact name wins over one that differs only in case.
    run(club.slug, str(group.pk), twice, "--column", "e-mail", "--remove")
    assert member_ids(group) == set()
