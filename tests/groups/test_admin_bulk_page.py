"""A group's members page: CSV uploads of any shape, and reports shown once after a redirect."""

from __future__ import annotations

import csv
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse

from groups.models import MembersGroup, Membership, MembershipEvent
from loyalty.models import Club
from tests.factories import GroupFactory, MemberFactory

pytestmark = pytest.mark.django_db


def members_url(group: MembersGroup) -> str:
    return reverse("admin:groups_membersgroup_members", args=[group.pk])


def member_ids(group: MembersGroup) -> set[int]:
    return set(Membership.objects.filter(group=group).values_list("member_id", flat=True))


def upload(client: Client, group: MembersGroup, body: bytes, **follow: Any) -> Any:
    return client.post(
        members_url(group),
        {
            "action": "add",
            "identifier_type": "email",
            "csv_file": SimpleUploadedFile("members.csv", body, content_type="text/csv"),
        },
        **follow,
    )


def test_a_csv_field_over_the_readers_limit_is_a_form_error_and_nothing_changes(
    admin_client: Client, club: Club
) -> None:
    group = GroupFactory(club=club)
    MemberFactory(club=club, email="ann@example.com")

    response = upload(
        admin_client, group, b"email\nann@example.com\n" + b"a" * 200_000 + b"@x.io\n"
    )

    assert response.status_code == 200
    assert response.context["form"].errors["csv_file"] == [
        "Line 3 is not valid CSV (field larger than field limit (131072)); nothing was changed."
    ]
    assert member_ids(group) == set()


def test_the_delimiter_is_guessed_from_the_start_of_a_long_first_line(
    admin_client: Client, club: Club, monkeypatch: pytest.MonkeyPatch
) -> None:
    group = GroupFactory(club=club)
    ann = MemberFactory(club=club, email="ann@example.com")
    sniff = csv.Sniffer.sniff
    samples: list[int] = []

    def measured_sniff(self: csv.Sniffer, sample: str, delimiters: str | None = None) -> Any:
        samples.append(len(sample))
        return sniff(self, sample, delimiters)

    monkeypatch.setattr(csv.Sniffer, "sniff", measured_sniff)
    # About 1 MB of short semicolon-separated fields: only a semicolon delimiter reads it.
    first_line = b"ann@example.com" + b";x" * 500_000 + b"\n"

    response = upload(admin_client, group, first_line, follow=True)

    assert max(samples) <= 4096
    assert dict(response.context["result"]["counts"])["Added"] == 1
    assert member_ids(group) == {ann.pk}


def test_a_header_less_file_reports_an_invalid_first_line(admin_client: Client, club: Club) -> None:
    group = GroupFactory(club=club)
    ann = MemberFactory(club=club, email="ann@example.com")

    response = upload(admin_client, group, b"not-an-email\nann@example.com\n", follow=True)

    assert response.context["result"]["invalid"] == ["not-an-email"]
    assert dict(response.context["result"]["counts"])["Added"] == 1
    assert member_ids(group) == {ann.pk}


@pytest.mark.parametrize("header", ["email", "E-mail", "Email address", "ID", "member_id", "Phone"])
def test_a_first_row_naming_the_column_is_a_header_and_skipped(
    header: str, admin_client: Client, club: Club
) -> None:
    group = GroupFactory(club=club)
    ann = MemberFactory(club=club, email="ann@example.com")

    response = upload(
        admin_client, group, f"{header};name\nann@example.com;Ann\n".encode(), follow=True
    )

    assert response.context["result"]["invalid"] == []
    assert member_ids(group) == {ann.pk}


def test_a_first_row_with_another_column_name_is_reported_invalid(
    admin_client: Client, club: Club
) -> None:
    group = GroupFactory(club=club)
    MemberFactory(club=club, email="ann@example.com")

    response = upload(admin_client, group, b"E-post\nann@example.com\n", follow=True)

    assert response.context["result"]["invalid"] == ["E-post"]
    assert b"email, e-mail, email address, msisdn" in response.content


def test_a_bulk_change_redirects_and_its_report_is_shown_once(
    admin_client: Client, club: Club
) -> None:
    group = GroupFactory(club=club)
    ann = MemberFactory(club=club, email="ann@example.com")
    data = {
        "action": "remove",
        "identifier_type": "email",
        "identifiers": "ann@example.com\nnobody@example.com\nnot-an-email",
    }
    admin_client.post(
        members_url(group),
        {"action": "add", "identifier_type": "email", "identifiers": "ann@example.com"},
    )

    posted = admin_client.post(members_url(group), data)
    shown = admin_client.get(members_url(group))
    reloaded = admin_client.get(members_url(group))

    assert posted.status_code == 302
    assert posted["Location"] == members_url(group)
    assert shown.context["result"] == {
        "action": "remove",
        "identifier_type": "email",
        "counts": [["Removed", 1], ["Not members", 0]],
        "not_found": ["nobody@example.com"],
        "invalid": ["not-an-email"],
        "members_count": 0,
    }
    assert b'id="result"' in shown.content
    assert b"nobody@example.com" in shown.content
    # The form keeps the choices of the change just made.
    assert shown.context["form"].initial == {"action": "remove", "identifier_type": "email"}
    assert reloaded.context["result"] is None
    assert b'id="result"' not in reloaded.content
    assert MembershipEvent.objects.filter(group_id=group.pk, member_id=ann.pk).count() == 2
    assert member_ids(group) == set()


def test_a_change_from_a_find_member_result_returns_to_that_result(
    admin_client: Client, club: Club
) -> None:
    group = GroupFactory(club=club)
    ann = MemberFactory(club=club, email="ann@example.com")
    url = f"{members_url(group)}?q=ann%40example.com"

    posted = admin_client.post(
        url, {"action": "add", "identifier_type": "id", "identifiers": str(ann.pk)}
    )
    shown = admin_client.get(posted["Location"])

    assert posted["Location"] == url
    assert shown.context["found"] == [(ann, True)]
    assert dict(shown.context["result"]["counts"]) == {"Added": 1, "Already members": 0}


def test_a_report_is_shown_on_its_own_groups_page_only(admin_client: Client, club: Club) -> None:
    group, other = GroupFactory.create_batch(2, club=club)
    MemberFactory(club=club, email="ann@example.com")

    admin_client.post(
        members_url(group),
        {"action": "add", "identifier_type": "email", "identifiers": "ann@example.com"},
    )
    elsewhere = admin_client.get(members_url(other))
    own = admin_client.get(members_url(group))

    assert elsewhere.context["result"] is None
    assert own.context["result"]["members_count"] == 1


def test_a_refused_form_is_shown_again_without_a_redirect(admin_client: Client, club: Club) -> None:
    group = GroupFactory(club=club)

    response = admin_client.post(
        members_url(group), {"action": "add", "identifier_type": "email", "identifiers": ""}
    )

    assert response.status_code == 200
    assert response.context["result"] is None
    assert "Paste identifiers" in str(response.context["form"].non_field_errors())
