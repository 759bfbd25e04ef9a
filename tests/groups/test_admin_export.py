"""Staff download a group's members as CSV: a list action for one group, and a link on its page."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from typing import Any

import pytest
from django.contrib.messages import get_messages
from django.test import Client
from django.urls import reverse

from groups import services
from groups.models import MembersGroup, Source
from loyalty.models import Club
from tests.factories import GroupFactory, MemberFactory

pytestmark = pytest.mark.django_db

ACTION = "export_members_csv"
HEADER = ["id", "email", "msisdn", "joined_at", "properties"]


@pytest.fixture
def viewer(staff_client_with: Callable[..., Client]) -> Client:
    """A staff member of ``club`` only, who may view groups and nothing more."""
    return staff_client_with("groups.view_membersgroup")


def changelist_url() -> str:
    return reverse("admin:groups_membersgroup_changelist")


def download_url(group: MembersGroup) -> str:
    return reverse("admin:groups_membersgroup_members_csv", args=[group.pk])


def export(client: Client, *groups: MembersGroup) -> Any:
    return client.post(
        changelist_url(), {"action": ACTION, "_selected_action": [g.pk for g in groups]}
    )


def rows(response: Any) -> list[list[str]]:
    assert response.streaming
    content = b"".join(response.streaming_content)
    return list(csv.reader(io.StringIO(content.decode(), newline="")))


def messages_of(response: Any) -> list[str]:
    return [str(message) for message in get_messages(response.wsgi_request)]


def group_with_members(club: Club, count: int) -> tuple[MembersGroup, list[int]]:
    group = GroupFactory(club=club)
    ids = [MemberFactory(club=club).pk for _ in range(count)]
    services.add_member_ids(group=group, member_ids=ids, source=Source.API)
    return group, ids


def test_exporting_one_selected_group_downloads_exactly_its_members(
    viewer: Client, club: Club
) -> None:
    group, ids = group_with_members(club, 3)
    group_with_members(club, 2)

    response = export(viewer, group)

    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"] == f'attachment; filename="members-group-{group.pk}.csv"'
    table = rows(response)
    assert table[0] == HEADER
    assert [int(row[0]) for row in table[1:]] == ids


def test_exporting_several_groups_at_once_is_refused_with_a_message(
    viewer: Client, club: Club
) -> None:
    red, _ = group_with_members(club, 1)
    blue, _ = group_with_members(club, 1)

    response = export(viewer, red, blue)

    assert response.status_code == 302
    assert not response.streaming
    assert messages_of(response) == [
        "Select exactly one group to export its members (2 selected); nothing was exported."
    ]


def test_staff_cannot_export_another_clubs_group(
    viewer: Client, club: Club, other_club: Club
) -> None:
    theirs, _ = group_with_members(other_club, 2)

    response = export(viewer, theirs)
    download = viewer.get(download_url(theirs))

    assert response.status_code == 302
    assert not response.streaming
    assert messages_of(response) == [
        "Select exactly one group to export its members (0 selected); nothing was exported."
    ]
    assert download.status_code == 404
    assert not download.streaming


def test_a_groups_page_links_its_csv_download_which_serves_system_groups_too(
    viewer: Client, club: Club, all_members: MembersGroup
) -> None:
    ids = [MemberFactory(club=club).pk for _ in range(2)]

    page = viewer.get(reverse("admin:groups_membersgroup_change", args=[all_members.pk]))
    response = viewer.get(download_url(all_members))

    assert f'href="{download_url(all_members)}"' in page.content.decode()
    assert response.status_code == 200
    assert [int(row[0]) for row in rows(response)[1:]] == ids


def test_the_members_page_links_the_csv_download(viewer: Client, club: Club) -> None:
    group, _ = group_with_members(club, 1)

    page = viewer.get(reverse("admin:groups_membersgroup_members", args=[group.pk]))

    assert f'href="{download_url(group)}"' in page.content.decode()


def test_the_download_needs_the_view_permission(
    staff_client_with: Callable[..., Client], club: Club
) -> None:
    group, _ = group_with_members(club, 1)
    client = staff_client_with("members.view_member")

    assert client.get(download_url(group)).status_code == 403
