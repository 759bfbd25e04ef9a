"""Cells a spreadsheet would run as formulas: the admin's download escapes them (OWASP's
``'`` prefix); the API and the command keep the data raw unless asked to escape."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.test import Client
from django.urls import reverse

from groups import services
from groups.models import MembersGroup
from loyalty.models import Club
from tests.api_fixtures import ClubClient
from tests.factories import GroupFactory, MemberFactory

pytestmark = pytest.mark.django_db

# Addresses Django accepts that start as formulas do, and a plain one.
EMAILS = [
    "=cmd|'/c'!a0@example.com",
    "+sum@example.com",
    "-2+3@example.com",
    "ann@example.com",
]
RAW = EMAILS
ESCAPED = [f"'{email}" for email in EMAILS[:3]] + [EMAILS[3]]


@pytest.fixture
def group(club: Club) -> MembersGroup:
    group = GroupFactory(club=club)
    members = [MemberFactory(club=club, email=email, properties={"n": 1}) for email in EMAILS]
    services.add_member_ids(group=group, member_ids=[m.pk for m in members], source="api")
    return group


def emails(content: bytes) -> list[str]:
    rows = list(csv.DictReader(io.StringIO(content.decode(), newline="")))
    assert all(row["properties"] == '{"n": 1}' for row in rows)
    return [row["email"] for row in rows]


def streamed(response: Any) -> bytes:
    assert response.status_code == 200
    return b"".join(response.streaming_content)


def test_the_api_keeps_the_data_raw_unless_asked_to_escape(
    api: ClubClient, group: MembersGroup
) -> None:
    path = f"members_groups/{group.pk}/members.csv"

    assert emails(streamed(api.get(path))) == RAW
    assert emails(streamed(api.get(f"{path}?escape_formulas=false"))) == RAW
    assert emails(streamed(api.get(f"{path}?escape_formulas=true"))) == ESCAPED


def test_a_bad_or_unknown_export_parameter_is_422(api: ClubClient, group: MembersGroup) -> None:
    path = f"members_groups/{group.pk}/members.csv"

    bad = api.get(f"{path}?escape_formulas=maybe")
    unknown = api.get(f"{path}?escape=true")

    assert (bad.status_code, unknown.status_code) == (422, 422)
    assert bad.json()["details"] == {
        "escape_formulas": [{"error": "invalid", "options": {"value": "maybe"}}]
    }
    assert list(unknown.json()["details"]) == ["escape"]


def test_the_admin_download_escapes_formulas(
    staff_client_with: Callable[..., Client], group: MembersGroup
) -> None:
    viewer = staff_client_with("groups.view_membersgroup")

    linked = viewer.get(reverse("admin:groups_membersgroup_members_csv", args=[group.pk]))
    action = viewer.post(
        reverse("admin:groups_membersgroup_changelist"),
        {"action": "export_members_csv", "_selected_action": [group.pk]},
    )

    assert emails(streamed(linked)) == ESCAPED
    assert emails(streamed(action)) == ESCAPED


def test_the_command_keeps_the_data_raw_unless_asked_to_escape(
    club: Club, group: MembersGroup, tmp_path: Path
) -> None:
    raw, escaped = tmp_path / "raw.csv", tmp_path / "escaped.csv"

    call_command("export_group_members", club.slug, str(group.pk), str(raw), stdout=io.StringIO())
    call_command(
        "export_group_members",
        club.slug,
        str(group.pk),
        str(escaped),
        "--escape-formulas",
        stdout=io.StringIO(),
    )

    assert emails(raw.read_bytes()) == RAW
    assert emails(escaped.read_bytes()) == ESCAPED
