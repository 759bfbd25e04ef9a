"""The member import engine: file formats, matching, merging, rejects, batches and groups."""

from __future__ import annotations

import json
from collections.abc import Iterable
from itertools import chain
from pathlib import Path
from typing import Any

import pytest

from groups import services as group_services
from groups.integrity import discrepancy
from groups.models import MembersGroup, Membership, MembershipEvent
from loyalty.models import Club
from members.imports import ImportReport, Reject, import_members, read_rows
from members.imports import database as import_database
from members.imports import rows as import_rows
from members.models import Member
from members.services import create_member, update_member
from tests.helpers import assert_consistent, cond

pytestmark = pytest.mark.django_db

CONSENT_TIME = "2024-03-01T10:00:00+00:00"


def write(tmp_path: Path, text: str | bytes, name: str = "members.csv") -> Path:
    path = tmp_path / name
    if isinstance(text, str):
        path.write_text(text, encoding="utf-8", newline="")
    else:
        path.write_bytes(text)
    return path


def run(
    club: Club, source: Path | Iterable[tuple[int, Any]], **options: Any
) -> tuple[ImportReport, list[Reject]]:
    rejects: list[Reject] = []
    rows = read_rows(source) if isinstance(source, Path) else source
    report = import_members(club=club, rows=rows, on_reject=rejects.append, **options)
    return report, rejects


def counts(report: ImportReport) -> tuple[int, int, int, int]:
    return report.created, report.updated, report.unchanged, report.rejected


def reasons(rejects: list[Reject]) -> list[tuple[int, str]]:
    return [(reject.line, reject.reason) for reject in rejects]


def member(club: Club, email: str) -> Member:
    return Member.objects.get(club=club, email=email)


def assert_exact(group: MembersGroup) -> None:
    """The group's count equals its rows, its events replay to them, and its rule holds."""
    assert_consistent(group)
    found = discrepancy(group)
    assert found.ok, found.describe()


def snapshot(club: Club) -> dict[str, Any]:
    """The club's members and memberships without ids and times, comparable across runs."""
    members = {}
    for m in Member.objects.filter(club=club):
        members[m.email or m.msisdn] = {
            "msisdn": m.msisdn,
            "properties": m.properties,
            "consents": {name: c["status"] for name, c in m.consents.items()},
            "statuses": (m.sms_status, m.email_status, m.push_status),
            "subunit_ids": m.subunit_ids,
            "favorite_stores": m.favorite_stores,
        }
    groups = {}
    for group in MembersGroup.objects.filter(club=club):
        rows = Membership.objects.filter(group=group).select_related("member")
        groups[group.name] = (group.members_count, sorted(r.member.email for r in rows))
    return {"members": members, "groups": groups}


# Formats --------------------------------------------------------------------------------------


def test_a_csv_file_creates_members_normalised_like_the_services(
    club: Club, tmp_path: Path
) -> None:
    path = write(
        tmp_path,
        "Email,msisdn,first_name,birthday,postal_code,interests[],points:number,vip:boolean,"
        "extra:json,consents.email_marketing,sms_status,subunit_ids,favorite_stores,created_at\n"
        " Ann@Example.COM ,+47 407 69 126,Ann,1990-05-17,0150,music| books ,42,yes,"
        '"{""a"": [1]}",yes,Enabled,1|2,[101],2001-01-01\n'
        ",4791234567,,,,,,,,,,,,\n",
    )

    report, rejects = run(club, path)

    assert counts(report) == (2, 0, 0, 0)
    assert rejects == []
    ann = member(club, "ann@example.com")
    assert ann.msisdn == "4740769126"
    assert ann.properties == {
        "first_name": "Ann",
        "birthday": "1990-05-17",
        "postal_code": "0150",
        "interests": ["music", "books"],
        "points": 42,
        "vip": True,
        "extra": {"a": [1]},
    }
    assert list(ann.consents) == ["email_marketing"]
    assert ann.consents["email_marketing"]["status"] is True
    assert ann.consents["email_marketing"]["updated_at"].startswith(str(ann.created_at.year))
    assert (ann.sms_status, ann.email_status, ann.push_status) == (
        "enabled",
        "disabled",
        "disabled",
    )
    assert (ann.subunit_ids, ann.favorite_stores) == ([1, 2], [101])
    only_msisdn = Member.objects.get(club=club, msisdn="4791234567")
    assert only_msisdn.email is None
    assert only_msisdn.properties == {}
    assert (only_msisdn.subunit_ids, only_msisdn.favorite_stores) == ([], [])


def test_a_json_lines_file_creates_members_of_the_api_shape(club: Club, tmp_path: Path) -> None:
    row = {
        "email": "Bob@Example.com",
        "msisdn": 4740769126,
        "properties": {"first_name": "Bob", "points": 7.5, "interests": ["golf"]},
        "consents": {"sms": {"status": False, "updated_at": CONSENT_TIME}, "email": True},
        "email_status": "unsubscribed",
        "subunit_ids": [3],
        "favorite_stores": ["104", 105],
        "created_at": "2020-01-01T00:00:00Z",
        "updated_at": "2020-01-01T00:00:00Z",
    }
    path = write(tmp_path, "\n" + json.dumps(row) + "\n\n", name="members.jsonl")

    report, rejects = run(club, path)

    assert (counts(report), rejects) == ((1, 0, 0, 0), [])
    bob = member(club, "bob@example.com")
    assert bob.msisdn == "4740769126"
    assert bob.properties == {"first_name": "Bob", "points": 7.5, "interests": ["golf"]}
    assert bob.consents["sms"] == {"status": False, "updated_at": CONSENT_TIME}
    assert bob.consents["email"]["status"] is True
    assert bob.email_status == "unsubscribed"
    assert (bob.subunit_ids, bob.favorite_stores) == ([3], [104, 105])
    assert bob.created_at.year > 2020


def test_json_lines_are_recognised_by_content_whatever_the_file_name(
    club: Club, tmp_path: Path
) -> None:
    path = write(tmp_path, '{"email": "ann@example.com"}\n', name="export.txt")

    report, _ = run(club, path)

    assert report.created == 1


@pytest.mark.parametrize(
    ("text", "encoding"),
    [
        ("email;first_name\r\nann@example.com;Ann\r\n", "utf-8-sig"),
        ("email\tfirst_name\nann@example.com\tAnn\n", "utf-8"),
        ('"email","first_name"\n"ann@example.com","Ann"\n', "utf-8"),
    ],
    ids=["semicolon-bom-crlf", "tab", "quoted"],
)
def test_csv_dialects_and_a_byte_order_mark_are_understood(
    club: Club, tmp_path: Path, text: str, encoding: str
) -> None:
    path = tmp_path / "members.csv"
    path.write_bytes(text.encode(encoding))

    report, rejects = run(club, path)

    assert (counts(report), rejects) == ((1, 0, 0, 0), [])
    assert member(club, "ann@example.com").properties == {"first_name": "Ann"}


def test_quoted_newlines_stay_in_the_value_and_lines_are_counted_in_the_file(
    club: Club, tmp_path: Path
) -> None:
    path = write(
        tmp_path,
        'email,note\nann@example.com,"first line\nsecond line"\n\nnot-an-email,x\n',
    )

    report, rejects = run(club, path)

    assert report.created == 1
    assert member(club, "ann@example.com").properties == {"note": "first line\nsecond line"}
    assert reasons(rejects) == [(5, "email 'not-an-email' is not a valid email address")]


# Rejects --------------------------------------------------------------------------------------

HEADER = "email,msisdn,first_name,sms_status,consents.news,subunit_ids,points:number\n"


@pytest.mark.parametrize(
    ("row", "reason"),
    [
        ("ann@,,,,,,", "email 'ann@' is not a valid email address"),
        (",12,,,,,", "msisdn '12' must have 7 to 15 digits with the country code"),
        (",+47 4x,,,,,", "msisdn '+47 4x' is not a valid international phone number"),
        (",,Ann,,,,", "the row has no email, msisdn or id"),
        ("ann@example.com,,,loud,,,", "sms_status 'loud' is not one of enabled, disabled,"),
        ("ann@example.com,,,,maybe,,", "consents.news: 'maybe' is not one of true, false,"),
        ("ann@example.com,,,,,1|x,", "subunit_ids must be a list of positive integers"),
        ('ann@example.com,,,,,"[1,",', "subunit_ids: not valid JSON: Expecting value"),
        ("ann@example.com,,,,,,ten", "points:number: 'ten' is not a number"),
        ("ann@example.com,,,,,,1e999", "points:number: '1e999' is not a number"),
        ("ann@example.com,,Ann", "the row has 3 columns, the header 7"),
        ('ann@example.com,,"A"nn,,,,', "not valid CSV: ',' expected after '\"'"),
        ("ann@example.com,,A\x00nn,,,,", "the row contains a NUL character"),
    ],
)
def test_a_malformed_csv_row_is_rejected_with_its_line_and_reason(
    club: Club, tmp_path: Path, row: str, reason: str
) -> None:
    path = write(tmp_path, HEADER + "bob@example.com,,,,,,\n" + row + "\n")

    report, rejects = run(club, path)

    assert counts(report) == (1, 0, 0, 1)
    [reject] = rejects
    assert reject.line == 3
    assert reject.reason.startswith(reason)
    assert reject.row == row


def test_bytes_that_are_not_utf8_reject_their_row_only(club: Club, tmp_path: Path) -> None:
    path = write(tmp_path, b"email,first_name\nann@example.com,Ann\nbob@example.com,B\xf8b\n")

    report, rejects = run(club, path)

    assert counts(report) == (1, 0, 0, 1)
    assert reasons(rejects) == [(3, "the row is not valid UTF-8")]


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ('{"email": "ann@example.com",', "not valid JSON: "),
        ('["ann@example.com"]', "not a JSON object"),
        ('{"email": "ann@example.com", "first_name": "Ann"}', "unknown field 'first_name'"),
        ('{"email": "ann@example.com", "properties": []}', "properties must be a JSON object"),
        ('{"email": "ann@example.com", "consents": {"x": 1}}', "consents.x must be true, false"),
        (
            '{"email": "a@b.io", "consents": {"x": {"status": true, "updated_at": "May"}}}',
            "consents.x.updated_at must be an ISO 8601 date and time",
        ),
        ('{"email": "ann@example.com", "properties": {"x": NaN}}', "not valid JSON: NaN is not"),
        ('{"email": "ann@example.com", "properties": {"x": "\\u0000"}}', "not valid JSON: a str"),
        ('{"email": "ann@example.com", "properties": {"x": "\\ud800"}}', "not valid JSON: a str"),
        ('{"email": "ann@example.com", "push_status": 1}', "push_status 1 is not one of"),
        ('{"email": "ann@example.com", "favorite_stores": 5}', "favorite_stores must be a list"),
        ('{"id": "x"}', "id 'x' must be a positive integer"),
        ('{"email": "ann@example.com", "consents": "yes"}', "consents must be a JSON object"),
        ('{"properties": ' + "[" * 100_000, "not valid JSON: nested too deeply"),
    ],
)
def test_a_malformed_json_line_is_rejected_with_its_line_and_reason(
    club: Club, tmp_path: Path, line: str, reason: str
) -> None:
    path = write(tmp_path, '{"email": "bob@example.com"}\n' + line + "\n", name="m.jsonl")

    report, rejects = run(club, path)

    assert counts(report) == (1, 0, 0, 1)
    [reject] = rejects
    assert (reject.line, reject.row) == (2, line)
    assert reject.reason.startswith(reason)


def test_bytes_that_are_not_utf8_reject_their_json_line_only(club: Club, tmp_path: Path) -> None:
    path = write(tmp_path, b'{"email": "ann@example.com"}\n{"email": "b\xf8b@example.com"}\n')

    report, rejects = run(club, path)

    assert counts(report) == (1, 0, 0, 1)
    assert reasons(rejects) == [(2, "the line is not valid UTF-8")]


@pytest.mark.parametrize(
    ("header", "reason"),
    [
        ("email,first name", "column 'first name': 'first name' is not a property name"),
        ("email,Email", "columns 'email' and 'Email' name the same field"),
        ("email,,x", "column 2 has no name"),
        ("email,points:int", "column 'points:int': the type must be one of"),
        ("email,members_group_ids", "column 'members_group_ids': 'members_group_ids' is not"),
    ],
)
def test_a_bad_header_rejects_every_row_saying_why(
    club: Club, tmp_path: Path, header: str, reason: str
) -> None:
    path = write(tmp_path, f"{header}\nann@example.com,1\nbob@example.com,2\n")

    report, rejects = run(club, path)

    assert counts(report) == (0, 0, 0, 2)
    assert [r.line for r in rejects] == [2, 3]
    assert all(r.reason.startswith(f"the header (line 1) is not valid: {reason}") for r in rejects)


def test_a_file_that_is_neither_csv_nor_json_lines_is_rejected_row_by_row(
    club: Club, tmp_path: Path
) -> None:
    path = write(tmp_path, bytes(range(1, 256)) * 3 + b"\n\x00\x01\n", name="image.png")

    report, rejects = run(club, path)

    assert report.created == report.updated == report.unchanged == 0
    assert report.rejected == len(rejects) > 0
    assert Member.objects.filter(club=club).count() == 0


def test_rows_given_by_code_are_checked_like_rows_read_from_files(club: Club) -> None:
    rows: list[tuple[int, Any]] = [
        (1, {"email": "ann@example.com", "properties": {"seen": {1, 2}}}),
        (2, {"email": "bob@example.com", "properties": {"score": float("nan")}}),
        (3, ["carl@example.com"]),
        (4, {"email": "dora@example.com", "properties": {"nick": "Do"}}),
        (5, {"email": "erik@example.com", "consents": {7: True}}),
    ]

    report, rejects = run(club, rows)

    assert counts(report) == (1, 0, 0, 4)
    assert reasons(rejects) == [
        (1, "the row: set is not a JSON value"),
        (2, "the row: nan is not a JSON number"),
        (3, "not a JSON object"),
        (5, "the row: 7 is not a valid key"),
    ]
    assert rejects[0].row == rows[0][1]


# Matching and modes ---------------------------------------------------------------------------


@pytest.fixture
def ann(club: Club) -> Member:
    return create_member(
        club=club,
        source="api",
        email="ann@example.com",
        msisdn="4740769126",
        properties={"first_name": "Ann", "city": "Oslo"},
        consents={"news": {"status": True, "updated_at": CONSENT_TIME}},
        subunit_ids=[1],
    )


@pytest.fixture
def bob(club: Club) -> Member:
    return create_member(club=club, source="api", email="bob@example.com", msisdn="4791234567")


def test_upsert_merges_properties_and_consents_into_the_matched_member(
    club: Club, ann: Member, tmp_path: Path
) -> None:
    path = write(
        tmp_path,
        "email,last_name,city,consents.sms,email_status\n"
        "ANN@example.com,Nordmann,,no,enabled\n"
        "new@example.com,New,,,\n",
    )

    report, _ = run(club, path)

    assert counts(report) == (1, 1, 0, 0)
    ann.refresh_from_db()
    assert ann.properties == {"first_name": "Ann", "city": "Oslo", "last_name": "Nordmann"}
    assert ann.consents["news"] == {"status": True, "updated_at": CONSENT_TIME}
    assert ann.consents["sms"]["status"] is False
    assert ann.email_status == "enabled"
    assert ann.subunit_ids == [1]


def test_rows_match_by_email_and_else_by_msisdn(club: Club, ann: Member, tmp_path: Path) -> None:
    path = write(tmp_path, "email,msisdn,nick\nann.new@example.com,+4740769126,A\n")

    report, _ = run(club, path)

    assert counts(report) == (0, 1, 0, 0)
    ann.refresh_from_db()
    assert (ann.email, ann.properties["nick"]) == ("ann.new@example.com", "A")


def test_update_by_msisdn_changes_the_email(club: Club, ann: Member, tmp_path: Path) -> None:
    path = write(tmp_path, "msisdn,email\n004740769126,ann@work.example\n")

    report, _ = run(club, path, match_by="msisdn", mode="update")

    assert counts(report) == (0, 1, 0, 0)
    ann.refresh_from_db()
    assert ann.email == "ann@work.example"


def test_update_by_id_changes_email_and_msisdn(club: Club, ann: Member, tmp_path: Path) -> None:
    row = {"id": ann.pk, "email": "a@example.com", "msisdn": "+4799999999"}
    path = write(tmp_path, json.dumps(row) + "\n", name="m.jsonl")

    report, _ = run(club, path, match_by="id")

    assert counts(report) == (0, 1, 0, 0)
    ann.refresh_from_db()
    assert (ann.email, ann.msisdn) == ("a@example.com", "4799999999")


def test_by_id_an_upsert_creates_rows_without_id_and_rejects_unknown_ids(
    club: Club, ann: Member, tmp_path: Path
) -> None:
    path = write(
        tmp_path,
        f"id,email,nick\n{ann.pk},,A\n,new@example.com,N\n{ann.pk + 1000},x@example.com,X\n",
    )

    report, rejects = run(club, path, match_by="id")

    assert counts(report) == (1, 1, 0, 1)
    assert reasons(rejects) == [(4, f"no member with id {ann.pk + 1000}")]
    assert member(club, "ann@example.com").properties["nick"] == "A"
    assert member(club, "new@example.com").properties == {"nick": "N"}


def test_create_mode_rejects_rows_of_existing_members(
    club: Club, ann: Member, tmp_path: Path
) -> None:
    path = write(tmp_path, "email,nick\nann@example.com,A\nnew@example.com,N\n")

    report, rejects = run(club, path, mode="create")

    assert counts(report) == (1, 0, 0, 1)
    assert reasons(rejects) == [(2, f"a member with this email already exists (id {ann.pk})")]
    assert "nick" not in member(club, "ann@example.com").properties


@pytest.mark.parametrize(
    ("match_by", "reason"),
    [(None, "no member with this email or msisdn"), ("email", "no member with this email")],
)
def test_update_mode_rejects_rows_matching_nobody(
    club: Club, ann: Member, tmp_path: Path, match_by: str | None, reason: str
) -> None:
    path = write(tmp_path, "email,nick\nann@example.com,A\nnew@example.com,N\n")

    report, rejects = run(club, path, mode="update", match_by=match_by)

    assert counts(report) == (0, 1, 0, 1)
    assert reasons(rejects) == [(3, reason)]


@pytest.mark.parametrize(
    ("text", "match_by", "reason"),
    [
        (
            "email,msisdn\nann@example.com,4791234567\n",
            None,
            "the msisdn belongs to member {bob}, but the email to member {ann}",
        ),
        (
            "email,msisdn\nnew@example.com,4791234567\n",
            "email",
            "the msisdn belongs to member {bob}, but no member has this email",
        ),
        (
            "id,email\n{ann},bob@example.com\n",
            "id",
            "the email belongs to member {bob}, but the id to member {ann}",
        ),
        ("msisdn\n4791234567\n", "email", "the row has no email to match by"),
    ],
)
def test_a_row_naming_two_members_is_rejected(
    club: Club,
    ann: Member,
    bob: Member,
    tmp_path: Path,
    text: str,
    match_by: str | None,
    reason: str,
) -> None:
    path = write(tmp_path, text.format(ann=ann.pk))

    report, rejects = run(club, path, match_by=match_by)

    assert counts(report) == (0, 0, 0, 1)
    assert reasons(rejects) == [(2, reason.format(ann=ann.pk, bob=bob.pk))]


@pytest.mark.parametrize("batch_size", [1, 100])
def test_a_later_row_for_the_same_member_is_rejected_as_a_duplicate(
    club: Club, ann: Member, tmp_path: Path, batch_size: int
) -> None:
    path = write(
        tmp_path,
        "email,msisdn,nick\n"
        "new@example.com,,First\n"
        "NEW@example.com,,Second\n"
        ",4740769126,Ann\n"
        "ann@example.com,,Again\n",
    )

    report, rejects = run(club, path, batch_size=batch_size)

    assert counts(report) == (1, 1, 0, 2)
    assert reasons(rejects) == [
        (3, "duplicate: line 2 already imported this member"),
        (5, "duplicate: line 4 already imported this member"),
    ]
    assert member(club, "new@example.com").properties == {"nick": "First"}
    assert member(club, "ann@example.com").properties["nick"] == "Ann"


def test_identifiers_can_move_between_members_within_one_batch(
    club: Club, ann: Member, bob: Member, tmp_path: Path
) -> None:
    # Bob takes Ann's email after Ann has left it: one UPDATE statement could not do both.
    path = write(
        tmp_path,
        f"id,email\n{ann.pk},ann@new.example\n{bob.pk},ann@example.com\n",
    )

    report, rejects = run(club, path, match_by="id")

    assert (counts(report), rejects) == ((0, 2, 0, 0), [])
    assert member(club, "ann@example.com").pk == bob.pk
    assert member(club, "ann@new.example").pk == ann.pk


# Arrays and consents --------------------------------------------------------------------------


def test_arrays_replace_the_stored_ones_by_default(club: Club, ann: Member, tmp_path: Path) -> None:
    update_member(member=ann, source="api", properties={**ann.properties, "interests": ["golf"]})
    path = write(tmp_path, "email,subunit_ids,interests[]\nann@example.com,2|3,ski|golf\n")

    run(club, path)

    ann.refresh_from_db()
    assert ann.subunit_ids == [2, 3]
    assert ann.properties["interests"] == ["ski", "golf"]


def test_arrays_append_only_their_new_items_and_a_second_run_changes_nothing(
    club: Club, ann: Member, tmp_path: Path
) -> None:
    update_member(member=ann, source="api", properties={**ann.properties, "interests": ["golf"]})
    path = write(
        tmp_path,
        "email,subunit_ids,favorite_stores,interests[]\nann@example.com,2|1|2,7,ski|golf|ski\n",
    )

    first, _ = run(club, path, arrays="append")
    second, _ = run(club, path, arrays="append")

    ann.refresh_from_db()
    assert (ann.subunit_ids, ann.favorite_stores) == ([1, 2], [7])
    assert ann.properties["interests"] == ["golf", "ski"]
    assert (first.updated, second.unchanged) == (1, 1)


def test_a_consent_keeps_its_time_unless_its_status_or_time_changes(
    club: Club, ann: Member, tmp_path: Path
) -> None:
    later = "2025-01-01T00:00:00+00:00"
    again = {"news": True, "sms": {"status": True, "updated_at": later}}
    refused = {"news": False}

    first, _ = run(club, write(tmp_path, json.dumps({"email": ann.email, "consents": again})))
    ann.refresh_from_db()
    assert ann.consents == {
        "news": {"status": True, "updated_at": CONSENT_TIME},
        "sms": {"status": True, "updated_at": later},
    }
    path = write(tmp_path, json.dumps({"email": ann.email, "consents": refused}))
    second, _ = run(club, path)
    third, _ = run(club, path)

    ann.refresh_from_db()
    assert ann.consents["news"]["status"] is False
    assert ann.consents["news"]["updated_at"] > CONSENT_TIME
    assert (first.updated, second.updated, third.unchanged) == (1, 1, 1)


def test_null_in_a_json_line_removes_a_property_or_a_consent(
    club: Club, ann: Member, tmp_path: Path
) -> None:
    row = {"email": "ann@example.com", "properties": {"city": None}, "consents": {"news": None}}
    path = write(tmp_path, json.dumps(row), name="m.jsonl")

    report, _ = run(club, path)

    assert report.updated == 1
    ann.refresh_from_db()
    assert (ann.properties, ann.consents) == ({"first_name": "Ann"}, {})


def test_blank_cells_leave_the_stored_values_alone(club: Club, ann: Member, tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "email,msisdn,first_name,city,consents.news,sms_status,subunit_ids\n"
        "ann@example.com,,,,,,\n",
    )

    report, _ = run(club, path)

    assert counts(report) == (0, 0, 1, 0)
    before = ann.properties, ann.consents, ann.subunit_ids, ann.msisdn
    ann.refresh_from_db()
    assert (ann.properties, ann.consents, ann.subunit_ids, ann.msisdn) == before


# Dry runs, re-runs, interruptions, groups ------------------------------------------------------


MIXED = (
    "email,msisdn,first_name,points:number,interests[],consents.news,sms_status\n"
    "ann@example.com,,Ann,12,golf,yes,enabled\n"
    "bob@example.com,4791234567,Bob,3,,no,\n"
    "carl@example.com,,Carl,25,ski|golf,yes,\n"
    "bad-email,,X,,,,\n"
    "dora@example.com,4790000001,Dora,30,,,\n"
    "erik@example.com,,Erik,1,,,disabled\n"
    "ann@example.com,,Ann again,,,,\n"
    "fred@example.com,4790000002,Fred,40,,yes,\n"
)


@pytest.fixture
def gold(club: Club) -> MembersGroup:
    return group_services.create_group(
        club=club, name="Gold", audience_conditions=[cond("number", "points", "gte", 20)]
    )


@pytest.fixture
def golfers(club: Club) -> MembersGroup:
    return group_services.create_group(
        club=club, name="Golfers", audience_conditions=[cond("array", "interests", "any", ["golf"])]
    )


def test_imported_members_join_all_members_and_their_automatic_groups_exactly(
    club: Club, all_members: MembersGroup, gold: MembersGroup, golfers: MembersGroup, tmp_path: Path
) -> None:
    report, _ = run(club, write(tmp_path, MIXED), batch_size=3)

    assert counts(report) == (6, 0, 0, 2)
    for group in (all_members, gold, golfers):
        assert_exact(group)
    assert all_members.members_count == 6
    assert set(gold.memberships.values_list("member__email", flat=True)) == {
        "carl@example.com",
        "dora@example.com",
        "fred@example.com",
    }
    assert golfers.members_count == 2
    assert set(
        MembershipEvent.objects.filter(group_id=gold.pk).values_list("source", flat=True)
    ) == {"rule"}


def test_updated_members_move_between_automatic_groups(
    club: Club, gold: MembersGroup, tmp_path: Path
) -> None:
    run(club, write(tmp_path, MIXED))
    path = write(tmp_path, "email,points:number\ncarl@example.com,2\nerik@example.com,99\n")

    report, _ = run(club, path)

    assert report.updated == 2
    assert_exact(gold)
    emails = set(gold.memberships.values_list("member__email", flat=True))
    assert emails == {"dora@example.com", "fred@example.com", "erik@example.com"}


def test_a_second_run_of_the_same_file_changes_nothing(
    club: Club, gold: MembersGroup, golfers: MembersGroup, tmp_path: Path
) -> None:
    path = write(tmp_path, MIXED)
    run(club, path, batch_size=3)
    stamps = dict(Member.objects.filter(club=club).values_list("pk", "updated_at"))
    events = MembershipEvent.objects.filter(club=club).count()

    report, rejects = run(club, path, batch_size=3)

    assert counts(report) == (0, 0, 6, 2)
    assert len(rejects) == 2
    assert dict(Member.objects.filter(club=club).values_list("pk", "updated_at")) == stamps
    assert MembershipEvent.objects.filter(club=club).count() == events


@pytest.mark.parametrize("batch_size", [1, 2, 100])
def test_a_second_run_repeating_a_row_rejects_the_repeat_like_the_first(
    club: Club, tmp_path: Path, batch_size: int
) -> None:
    path = write(tmp_path, "email,nick\nann@example.com,Ann\nann@example.com,Ann\n")

    first, first_rejects = run(club, path, batch_size=batch_size)
    second, second_rejects = run(club, path, batch_size=batch_size)

    assert counts(first) == (1, 0, 0, 1)
    assert counts(second) == (0, 0, 1, 1)
    assert reasons(first_rejects) == reasons(second_rejects)
    assert reasons(second_rejects) == [(3, "duplicate: line 2 already imported this member")]


def test_a_member_changed_since_its_import_is_restored_by_importing_the_file_again(
    club: Club, tmp_path: Path
) -> None:
    path = write(tmp_path, "email,msisdn,nick\nann@example.com,4740769126,Ann\n")
    run(club, path)
    update_member(
        member=member(club, "ann@example.com"),
        source="api",
        properties={"nick": "Changed"},
        msisdn=None,
    )

    report, _ = run(club, path)

    assert counts(report) == (0, 1, 0, 0)
    restored = member(club, "ann@example.com")
    assert (restored.msisdn, restored.properties) == ("4740769126", {"nick": "Ann"})


@pytest.mark.parametrize(
    ("second_header", "options", "expected"),
    [
        # The same row text under another header means other values.
        ("email,city", {}, {"nick": "Oslo", "city": "Oslo"}),
        # The same row with other options may do something else.
        ("email,nick", {"mode": "create"}, {"nick": "Oslo"}),
    ],
)
def test_a_row_is_only_taken_as_imported_under_the_same_header_and_options(
    club: Club, tmp_path: Path, second_header: str, options: dict[str, Any], expected: Any
) -> None:
    run(club, write(tmp_path, "email,nick\nann@example.com,Oslo\n"))

    report, rejects = run(
        club, write(tmp_path, f"{second_header}\nann@example.com,Oslo\n"), **options
    )

    assert member(club, "ann@example.com").properties == expected
    if options:
        assert reasons(rejects) == [
            (
                2,
                "a member with this email already exists (id "
                f"{member(club, 'ann@example.com').pk})",
            )
        ]
    else:
        assert counts(report) == (0, 1, 0, 0)


@pytest.fixture
def parsed_rows(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The line of every row the import parses."""
    lines: list[int] = []
    original = import_rows.parse_row

    def spy(line: int, row: Any) -> Any:
        lines.append(line)
        return original(line, row)

    monkeypatch.setattr(import_rows, "parse_row", spy)
    return lines


@pytest.mark.parametrize("name", ["members.csv", "members.jsonl"])
def test_a_re_import_skips_unparsed_the_rows_that_wrote_their_members(
    club: Club, tmp_path: Path, parsed_rows: list[int], name: str
) -> None:
    text = (
        "email,nick\nann@example.com,Ann\nbob@example.com,Bob\n"
        if name.endswith(".csv")
        else '{"email": "ann@example.com", "properties": {"nick": "Ann"}}\n'
        '{"email": "bob@example.com", "properties": {"nick": "Bob"}}\n'
    )
    path = write(tmp_path, text, name)
    run(club, path)
    first = len(parsed_rows)
    update_member(member=member(club, "bob@example.com"), source="api", properties={"x": 1})

    report, _ = run(club, path)

    assert first == 2
    # Ann's row is known; Bob was changed since, so his row is parsed and applied again.
    assert parsed_rows[first:] == [3 if name.endswith(".csv") else 2]
    assert counts(report) == (0, 1, 1, 0)
    assert all(m.import_fingerprint for m in Member.objects.filter(club=club))


@pytest.mark.parametrize(
    ("header", "cells"),
    [
        ("msisdn,nick", "+47 400 00 001,Ann"),
        ("email,msisdn,nick", ",004740000001,Ann"),
        ("id,nick", "{pk},Ann"),
        ("email,id,nick", "  ,{pk},Ann"),
    ],
)
def test_a_re_import_finds_a_known_row_by_its_msisdn_or_id_when_it_has_no_email(
    club: Club, tmp_path: Path, parsed_rows: list[int], header: str, cells: str
) -> None:
    create_member(club=club, source="api", msisdn="4740000001")
    pk = Member.objects.get(club=club).pk
    path = write(tmp_path, f"{header}\n{cells.format(pk=pk)}\n")

    first, _ = run(club, path)
    second, _ = run(club, path)

    assert counts(first) == (0, 1, 0, 0)
    assert counts(second) == (0, 0, 1, 0)
    assert parsed_rows == [2]


def test_a_re_import_knows_a_row_whose_email_is_not_written_as_stored(
    club: Club, tmp_path: Path, parsed_rows: list[int]
) -> None:
    path = write(tmp_path, 'email,nick\n" Ann@Example.COM ",Ann\n')

    first, _ = run(club, path)
    second, _ = run(club, path)

    assert counts(first) == (1, 0, 0, 0)
    assert counts(second) == (0, 0, 1, 0)
    assert parsed_rows == [2]


def test_a_known_row_taken_earlier_in_the_same_import_is_a_duplicate(
    club: Club, tmp_path: Path, parsed_rows: list[int]
) -> None:
    path = write(tmp_path, "email,nick\nann@example.com,Ann\nann@example.com,Ann\n")
    run(club, path)

    report, rejects = run(club, path, batch_size=1)

    assert counts(report) == (0, 0, 1, 1)
    assert reasons(rejects) == [(3, "duplicate: line 2 already imported this member")]
    # Only the first run parsed them: the second knew both rows by the email.
    assert parsed_rows == [2, 3]


def test_a_known_row_whose_member_an_earlier_row_re_keys_names_someone_else(
    club: Club, tmp_path: Path
) -> None:
    run(club, write(tmp_path, '{"email": "ann@example.com"}\n', "first.jsonl"))
    pk = member(club, "ann@example.com").pk
    # Line 1 moves member pk to bob; line 2, as the first import knew it, is now a new Ann.
    path = write(
        tmp_path,
        f'{{"id": {pk}, "email": "bob@example.com"}}\n{{"email": "ann@example.com"}}\n',
        "second.jsonl",
    )

    report, rejects = run(club, path)

    assert (counts(report), rejects) == ((1, 1, 0, 0), [])
    assert member(club, "bob@example.com").pk == pk
    assert member(club, "ann@example.com").pk != pk


@pytest.mark.parametrize(
    ("mode", "outcome"),
    [
        ("upsert", ((1, 1, 0, 0), [])),
        ("update", ((0, 1, 0, 1), [(3, "no member with this email or msisdn")])),
    ],
)
def test_a_known_row_whose_email_an_earlier_row_gave_away_is_parsed_again(
    club: Club, tmp_path: Path, mode: str, outcome: tuple[Any, ...]
) -> None:
    create_member(club=club, source="api", email="ann@example.com", msisdn="4740000001")
    known = "ann@example.com,"
    run(club, write(tmp_path, f"email,msisdn\n{known}\n", "first.csv"), mode=mode)

    report, rejects = run(
        club,
        write(tmp_path, f"email,msisdn\nbob@example.com,4740000001\n{known}\n", "second.csv"),
        mode=mode,
    )

    assert (counts(report), reasons(rejects)) == outcome
    assert Member.objects.get(club=club, msisdn="4740000001").email == "bob@example.com"


def test_a_member_from_elsewhere_is_known_after_one_import_that_leaves_it_unchanged(
    club: Club, tmp_path: Path, parsed_rows: list[int]
) -> None:
    create_member(club=club, source="api", email="ann@example.com", properties={"nick": "Ann"})
    stamp = member(club, "ann@example.com").updated_at
    path = write(tmp_path, "email,nick\nann@example.com,Ann\n")

    first, _ = run(club, path)
    second, _ = run(club, path)

    assert counts(first) == counts(second) == (0, 0, 1, 0)
    assert parsed_rows == [2]
    assert member(club, "ann@example.com").updated_at == stamp
    assert not MembershipEvent.objects.filter(club=club, source="import").exists()


@pytest.mark.parametrize(
    "options",
    [
        {"arrays": "append"},
        {"match_by": "email"},
        {"mode": "update"},
    ],
)
def test_a_row_is_known_only_under_the_options_that_imported_it(
    club: Club, tmp_path: Path, parsed_rows: list[int], options: dict[str, Any]
) -> None:
    path = write(tmp_path, "email,nick\nann@example.com,Ann\n")
    run(club, path)

    report, _ = run(club, path, **options)
    again, _ = run(club, path, **options)

    assert counts(report) == counts(again) == (0, 0, 1, 0)
    # Parsed again under new options, once: the unchanged member then holds the new one.
    assert parsed_rows == [2, 2]


@pytest.mark.parametrize(
    ("options", "reason"),
    [
        ({"mode": "create"}, "a member with this email already exists (id {pk})"),
        ({"match_by": "id"}, "the email belongs to member {pk}, but the row has no id"),
    ],
)
def test_where_a_re_import_refuses_a_row_the_fast_path_does_not_hide_it(
    club: Club, tmp_path: Path, options: dict[str, Any], reason: str
) -> None:
    path = write(tmp_path, "email,nick\nann@example.com,Ann\n")
    run(club, path, **options)

    _, rejects = run(club, path, **options)

    pk = member(club, "ann@example.com").pk
    assert reasons(rejects) == [(2, reason.format(pk=pk))]


def test_a_header_title_spanning_lines_is_part_of_the_fingerprint(
    club: Club, tmp_path: Path
) -> None:
    run(club, write(tmp_path, 'email,"\nnick"\nann@example.com,Oslo\n'))

    report, _ = run(club, write(tmp_path, 'email,"\ncity"\nann@example.com,Oslo\n'))

    assert counts(report) == (0, 1, 0, 0)
    assert member(club, "ann@example.com").properties == {"nick": "Oslo", "city": "Oslo"}


def test_rows_from_two_files_with_the_same_line_numbers_keep_their_own_fingerprints(
    club: Club, tmp_path: Path
) -> None:
    a = write(tmp_path, "email\nann@example.com\n", "a.csv")
    b = write(tmp_path, "email\nbob@example.com\n", "b.csv")
    run(club, chain(read_rows(a), read_rows(b)))

    report, rejects = run(club, chain(read_rows(a), read_rows(b)))

    assert counts(report) == (0, 0, 2, 0)
    assert rejects == []


def test_a_dry_run_writes_nothing_and_reports_what_a_real_run_does(
    club: Club, gold: MembersGroup, ann: Member, tmp_path: Path
) -> None:
    path = write(tmp_path, MIXED)
    before = snapshot(club)
    events = MembershipEvent.objects.count()

    dry, dry_rejects = run(club, path, dry_run=True, batch_size=2)

    assert snapshot(club) == before
    assert MembershipEvent.objects.count() == events
    real, real_rejects = run(club, path, batch_size=2)
    assert counts(dry) == counts(real) == (5, 1, 0, 2)
    assert reasons(dry_rejects) == reasons(real_rejects)


def test_an_interrupted_import_finishes_when_run_again(
    club: Club, other_club: Club, tmp_path: Path
) -> None:
    for target in (club, other_club):
        group_services.create_group(
            club=target, name="Gold", audience_conditions=[cond("number", "points", "gte", 20)]
        )
    path = write(tmp_path, MIXED)

    def stop(report: ImportReport, ids: list[int]) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run(club, path, batch_size=3, on_batch=stop)
    assert Member.objects.filter(club=club).count() == 3
    resumed, _ = run(club, path, batch_size=3)
    whole, _ = run(other_club, path, batch_size=3)

    assert counts(resumed) == (3, 0, 3, 2)
    assert counts(whole) == (6, 0, 0, 2)
    assert snapshot(club) == snapshot(other_club)
    for group in MembersGroup.objects.filter(club__in=[club, other_club]):
        assert_exact(group)


def test_the_outcome_does_not_depend_on_the_batch_size(
    club: Club, other_club: Club, tmp_path: Path
) -> None:
    path = write(tmp_path, MIXED)
    swaps = write(
        tmp_path,
        "msisdn,email\n4791234567,bob@new.example\n4790000001,bob@example.com\n",
        name="swaps.csv",
    )

    results = []
    for target, batch_size in ((club, 1), (other_club, 100)):
        first, _ = run(target, path, batch_size=batch_size)
        second, rejects = run(target, swaps, batch_size=batch_size, match_by="msisdn")
        results.append((counts(first), counts(second), reasons(rejects)))

    assert results[0] == results[1] == ((6, 0, 0, 2), (0, 2, 0, 0), [])
    assert snapshot(club) == snapshot(other_club)
    assert member(club, "bob@example.com").msisdn == "4790000001"


def test_callbacks_hear_of_each_batch_once_it_is_written(
    club: Club, ann: Member, tmp_path: Path
) -> None:
    path = write(tmp_path, "email,nick\nann@example.com,A\nnew@example.com,N\nbob@example.com,\n")
    batches: list[tuple[int, list[int]]] = []
    imported: list[list[int]] = []

    run(
        club,
        path,
        batch_size=2,
        on_batch=lambda report, ids: batches.append((report.rows, ids)),
        on_imported=imported.append,
    )
    run(club, path, on_imported=imported.append)

    new, bob = member(club, "new@example.com").pk, member(club, "bob@example.com").pk
    assert batches == [(2, [new, ann.pk]), (3, [bob])]
    assert imported == [[ann.pk, new], [bob], [ann.pk, new, bob]]


def test_the_same_file_gives_the_same_members_on_every_database(
    club: Club, gold: MembersGroup, tmp_path: Path
) -> None:
    run(club, write(tmp_path, MIXED))
    update = [
        {"email": "ann@example.com", "properties": {"points": 20.0, "interests": ["ski"]}},
        {"email": "bob@example.com", "favorite_stores": [3, 1], "push_status": "hard_bounced"},
        {"email": "carl@example.com", "properties": {"interests": ["golf", "ski"], "vip": True}},
        {"email": "dora@example.com", "properties": {"points": 30.0}},
    ]

    report, _ = run(club, write(tmp_path, "\n".join(map(json.dumps, update)), "u.jsonl"))

    assert counts(report) == (0, 3, 1, 0)
    assert snapshot(club) == {
        "members": {
            "ann@example.com": {
                "msisdn": None,
                "properties": {"first_name": "Ann", "points": 20.0, "interests": ["ski"]},
                "consents": {"news": True},
                "statuses": ("enabled", "disabled", "disabled"),
                "subunit_ids": [],
                "favorite_stores": [],
            },
            "bob@example.com": {
                "msisdn": "4791234567",
                "properties": {"first_name": "Bob", "points": 3},
                "consents": {"news": False},
                "statuses": ("disabled", "disabled", "hard_bounced"),
                "subunit_ids": [],
                "favorite_stores": [3, 1],
            },
            "carl@example.com": {
                "msisdn": None,
                "properties": {
                    "first_name": "Carl",
                    "points": 25,
                    "interests": ["golf", "ski"],
                    "vip": True,
                },
                "consents": {"news": True},
                "statuses": ("disabled", "disabled", "disabled"),
                "subunit_ids": [],
                "favorite_stores": [],
            },
            "dora@example.com": {
                "msisdn": "4790000001",
                "properties": {"first_name": "Dora", "points": 30},
                "consents": {},
                "statuses": ("disabled", "disabled", "disabled"),
                "subunit_ids": [],
                "favorite_stores": [],
            },
            "erik@example.com": {
                "msisdn": None,
                "properties": {"first_name": "Erik", "points": 1},
                "consents": {},
                "statuses": ("disabled", "disabled", "disabled"),
                "subunit_ids": [],
                "favorite_stores": [],
            },
            "fred@example.com": {
                "msisdn": "4790000002",
                "properties": {"first_name": "Fred", "points": 40},
                "consents": {"news": True},
                "statuses": ("disabled", "disabled", "disabled"),
                "subunit_ids": [],
                "favorite_stores": [],
            },
        },
        "groups": {
            "All members": (
                6,
                [f"{n}@example.com" for n in ("ann", "bob", "carl", "dora", "erik", "fred")],
            ),
            "Gold": (4, [f"{n}@example.com" for n in ("ann", "carl", "dora", "fred")]),
        },
    }


@pytest.mark.parametrize("order", ["as imported", "reversed"])
def test_a_file_read_again_finds_its_members_whatever_their_order(
    club: Club, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, order: str
) -> None:
    lines = [f"p{n}@example.com,{4740000000 + n},{n}\n" for n in range(30)]
    first = write(tmp_path, "email,msisdn,points:number\n" + "".join(lines), name="first.csv")
    ordered = lines if order == "as imported" else lines[::-1]
    again = write(tmp_path, "email,msisdn,points:number\n" + "".join(ordered), name="again.csv")
    assert counts(run(club, first, batch_size=5)[0]) == (30, 0, 0, 0)
    looked_up: list[int] = []
    by_identifier = import_database._known_by_identifier
    monkeypatch.setattr(
        import_database,
        "_known_by_identifier",
        lambda club, keyed: looked_up.append(len(keyed)) or by_identifier(club, keyed),
    )

    report, rejects = run(club, again, batch_size=5)

    assert (counts(report), rejects) == ((0, 0, 30, 0), [])
    # In the order of their ids, each batch's members follow the last batch's: only the
    # first batch is looked up row by row.
    if order == "as imported":
        assert looked_up == [5]
    else:
        assert sum(looked_up) >= 25
