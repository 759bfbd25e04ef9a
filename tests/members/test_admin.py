"""The member admin: writes through members.services, readable refusals, club-scoped staff."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from groups.models import EventKind, MembersGroup, MembershipEvent
from loyalty.models import Club
from members.models import Member, MemberImport
from tests.factories import MemberFactory
from tests.helpers import member_form

pytestmark = pytest.mark.django_db


def add_url() -> str:
    return reverse("admin:members_member_add")


def change_url(member: Member) -> str:
    return reverse("admin:members_member_change", args=[member.pk])


def changelist_url() -> str:
    return reverse("admin:members_member_changelist")


def form_errors(response: Any) -> dict[str, list[str]]:
    assert response.status_code == 200
    return dict(response.context["adminform"].form.errors)


def test_creating_a_member_in_the_admin_joins_all_members_on_the_admins_behalf(
    admin_client: Client, club: Club, all_members: MembersGroup
) -> None:
    response = admin_client.post(add_url(), member_form(club, email=" Ann@Example.COM "))

    assert response.status_code == 302
    member = Member.objects.get(club=club)
    assert member.email == "ann@example.com"
    assert member.properties == {"first_name": "Ann"}
    assert member.favorite_stores == [3, 5]
    all_members.refresh_from_db()
    assert all_members.members_count == 1
    joined = MembershipEvent.objects.get(group_id=all_members.pk, member_id=member.pk)
    assert (joined.kind, joined.actor) == (EventKind.JOINED, "user:admin")


def test_an_invalid_email_is_a_form_error_not_a_server_error(
    admin_client: Client, club: Club, all_members: MembersGroup
) -> None:
    response = admin_client.post(add_url(), member_form(club, email="not-an-email"))

    assert form_errors(response) == {"email": ["Enter a valid email address."]}
    assert not Member.objects.exists()
    all_members.refresh_from_db()
    assert all_members.members_count == 0


def test_a_member_needs_an_email_or_an_msisdn(admin_client: Client, club: Club) -> None:
    response = admin_client.post(add_url(), member_form(club))

    assert form_errors(response) == {"email": ["Enter an email or an MSISDN."]}
    assert not Member.objects.exists()


def test_consents_in_the_admin_follow_the_apis_rule(admin_client: Client, club: Club) -> None:
    refused = admin_client.post(
        add_url(),
        member_form(
            club,
            email="ann@example.com",
            consents='{"news": "yes", "sms": {"status": true, "updated_at": "soon"}}',
        ),
    )

    assert form_errors(refused) == {
        "consents": [
            'news: must be true, false or {"status": true or false, "updated_at": ...}',
            "sms.updated_at: must be an ISO 8601 date and time",
        ]
    }
    assert not Member.objects.exists()

    response = admin_client.post(
        add_url(),
        member_form(
            club,
            email="ann@example.com",
            consents='{"news": true, "sms": {"status": false, "updated_at": '
            '"2026-01-02T03:04:05+00:00"}, "gone": null}',
        ),
    )

    assert response.status_code == 302
    consents = Member.objects.get(club=club).consents
    assert set(consents) == {"news", "sms"}
    assert consents["news"]["status"] is True
    assert consents["news"]["updated_at"].startswith(str(timezone.now().year))
    assert consents["sms"] == {"status": False, "updated_at": "2026-01-02T03:04:05+00:00"}


def test_properties_nest_only_as_deep_as_the_api_takes_them(
    admin_client: Client, club: Club
) -> None:
    too_deep = '{"a": ' * 64 + "1" + "}" * 64
    response = admin_client.post(
        add_url(),
        member_form(club, email="ann@example.com", properties=too_deep, consents="[" * 100_000),
    )

    message = ["Nested too deeply: at most 63 levels of objects and arrays."]
    assert form_errors(response) == {"properties": message, "consents": message}
    assert not Member.objects.exists()
    fits = admin_client.post(
        add_url(),
        member_form(club, email="ann@example.com", properties='{"a": ' * 63 + "1" + "}" * 63),
    )
    assert fits.status_code == 302


@pytest.mark.parametrize(
    ("properties", "message"),
    [
        ('{"a": "b\\u0000"}', "Null characters are not allowed."),
        ('{"a\\ud800": 1}', "Lone surrogate characters are not allowed."),
        ('{"points": NaN}', "Numbers must be finite."),
        ('{"points": 1e400}', "Numbers must be finite."),
    ],
)
def test_properties_postgresql_cannot_store_are_a_form_error(
    admin_client: Client, club: Club, properties: str, message: str
) -> None:
    response = admin_client.post(
        add_url(), member_form(club, email="ann@example.com", properties=properties)
    )

    assert form_errors(response) == {"properties": [message]}
    assert not Member.objects.exists()


def test_properties_must_be_a_json_object_and_store_lists_integers(
    admin_client: Client, club: Club
) -> None:
    response = admin_client.post(
        add_url(),
        member_form(club, email="ann@example.com", properties="[1]", favorite_stores='["a"]'),
    )

    assert set(form_errors(response)) == {"properties", "favorite_stores"}
    assert not Member.objects.exists()


def test_an_email_taken_in_the_club_is_a_form_error_when_editing(
    admin_client: Client, club: Club
) -> None:
    MemberFactory(club=club, email="ann@example.com")
    bob = MemberFactory(club=club, email="bob@example.com")

    response = admin_client.post(change_url(bob), member_form(club, email="ANN@example.com"))

    assert form_errors(response) == {"email": ["Another member of this club has this email."]}
    bob.refresh_from_db()
    assert bob.email == "bob@example.com"


def test_editing_a_member_normalises_its_msisdn_and_keeps_its_club(
    admin_client: Client, club: Club, other_club: Club
) -> None:
    member = MemberFactory(club=club, email="ann@example.com")

    response = admin_client.post(
        change_url(member),
        member_form(other_club, email="ann@example.com", msisdn="+47 407 69 126"),
    )

    assert response.status_code == 302
    member.refresh_from_db()
    assert (member.msisdn, member.club) == ("4740769126", club)


def test_deleting_members_in_bulk_records_their_leaves_and_moves_the_counts(
    admin_client: Client, club: Club, all_members: MembersGroup
) -> None:
    leaving, staying = MemberFactory.create_batch(2, club=club)

    response = admin_client.post(
        changelist_url(),
        {"action": "delete_selected", "_selected_action": [leaving.pk], "post": "yes"},
    )

    assert response.status_code == 302
    assert list(Member.objects.filter(club=club)) == [staying]
    all_members.refresh_from_db()
    assert all_members.members_count == 1
    left = MembershipEvent.objects.get(member_id=leaving.pk, kind=EventKind.LEFT)
    assert (left.group_id, left.source, left.actor) == (all_members.pk, "admin", "user:admin")


def test_members_are_found_by_email_msisdn_or_id_in_any_spelling(
    admin_client: Client, club: Club
) -> None:
    ann = MemberFactory(club=club, email="ann@example.com", msisdn="4740769126")
    MemberFactory(club=club, email="bob@example.com")

    for term in ("ANN@example.com", "+47 407 69 126", str(ann.pk)):
        response = admin_client.get(changelist_url(), {"q": term})
        assert list(response.context["cl"].result_list) == [ann], term
    response = admin_client.get(changelist_url(), {"q": "nobody"})
    assert list(response.context["cl"].result_list) == []


def test_staff_see_and_reach_only_the_members_of_their_clubs(
    staff_client: Client, club: Club, other_club: Club
) -> None:
    mine = MemberFactory(club=club)
    theirs = MemberFactory(club=other_club)

    response = staff_client.get(changelist_url())

    assert list(response.context["cl"].result_list) == [mine]
    assert staff_client.get(change_url(mine)).status_code == 200
    assert staff_client.get(change_url(theirs)).status_code == 302
    delete = staff_client.post(
        reverse("admin:members_member_delete", args=[theirs.pk]), {"post": "yes"}
    )
    assert delete.status_code == 302
    assert Member.objects.filter(pk=theirs.pk).exists()


def test_staff_cannot_create_a_member_in_another_club(
    staff_client: Client, other_club: Club
) -> None:
    response = staff_client.post(add_url(), member_form(other_club, email="ann@example.com"))

    assert set(form_errors(response)) == {"club"}
    assert not Member.objects.exists()


def test_api_imports_are_listed_read_only_for_the_clubs_staff(
    staff_client_with: Callable[..., Client], club: Club, other_club: Club
) -> None:
    ours = MemberImport.objects.create(
        club=club,
        import_id="ours",
        operation="create",
        member_identifier_type="email",
        multi_values_update_mode="replace",
    )
    MemberImport.objects.create(
        club=other_club,
        import_id="theirs",
        operation="create",
        member_identifier_type="email",
        multi_values_update_mode="replace",
    )
    client = staff_client_with("members.view_memberimport")

    listed = client.get(reverse("admin:members_memberimport_changelist"))
    page = client.get(reverse("admin:members_memberimport_change", args=[ours.pk]))

    assert [i.import_id for i in listed.context["cl"].result_list] == ["ours"]
    assert page.status_code == 200
    assert b'name="_save"' not in page.content
    assert client.get(reverse("admin:members_memberimport_add")).status_code == 403
