"""import_group_members on malformed files: each bad record is a reason, never a traceback."""

from __future__ import annotations

import csv
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from groups.models import MembersGroup, Membership
from loyalty.models import Club
from members.models import Member
from tests.factories import GroupFactory, MemberFactory
from tests.helpers import assert_consistent

pytestmark = pytest.mark.django_db

TOO_LONG = "x" * (csv.field_size_limit() + 1)
UNREADABLE = f"invalid: not valid CSV: field larger than field limit ({csv.field_size_limit()})"


def run(*args: str) -> str:
    out = StringIO()
    call_command("import_group_members", *args, stdout=out, stderr=StringIO())
    return out.getvalue()


def write(tmp_path: Path, text: str, name: str = "members.csv") -> str:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8", newline="")
    return str(path)


def report_rows(path: Path) -> list[list[str]]:
    with path.open(newline="") as file:
        return list(csv.reader(file))


def member_ids(group: MembersGroup) -> set[int]:
    return set(Membership.objects.filter(group=group).values_list("member_id", flat=True))


@pytest.fixture
def group(club: Club) -> MembersGroup:
    return GroupFactory(club=club, name="Red")


@pytest.fixture
def ann(club: Club) -> Member:
    return MemberFactory(club=club, email="ann@example.com")


@pytest.fixture
def bob(club: Club) -> Member:
    return MemberFactory(club=club, email="bob@example.com")


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
    assert report_rows(report) == [["line", "identifier", "reason"], ["3", "", UNREADABLE]]
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
