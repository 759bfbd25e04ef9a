"""The members group admin: service-backed edits, system groups locked, bulk membership pages."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse
from pytest_django.fixtures import Settings

from audiences import services as audience_services
from groups import services
from groups.admin import members_groups as groups_admin
from groups.models import EventKind, MembersGroup, Membership, MembershipEvent, Source
from loyalty.models import Club
from tests.factories import GroupFactory, MemberFactory
from tests.helpers import assert_consistent, cond, in_groups

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff_client(staff_client_with: Callable[..., Client]) -> Client:
    """A staff member who manages ``club`` only, with the permissions a club's staff needs."""
    return staff_client_with(
        "groups.view_membersgroup",
        "groups.add_membersgroup",
        "groups.change_membersgroup",
        "groups.delete_membersgroup",
        "members.view_member",
        "members.add_member",
        "members.change_member",
        "members.delete_member",
    )


def changelist_url() -> str:
    return reverse("admin:groups_membersgroup_changelist")


def change_url(group: MembersGroup) -> str:
    return reverse("admin:groups_membersgroup_change", args=[group.pk])


def delete_url(group: MembersGroup) -> str:
    return reverse("admin:groups_membersgroup_delete", args=[group.pk])


def members_url(group: MembersGroup) -> str:
    return reverse("admin:groups_membersgroup_members", args=[group.pk])


def listed(client: Client, query: str = "") -> list[MembersGroup]:
    response = client.get(f"{changelist_url()}{query}")
    assert response.status_code == 200
    return list(response.context["cl"].result_list)


def member_ids(group: MembersGroup) -> set[int]:
    return set(Membership.objects.filter(group=group).values_list("member_id", flat=True))


def test_the_group_list_filters_by_club_and_system_and_shows_the_stored_count(
    admin_client: Client, club: Club, other_club: Club, all_members: MembersGroup
) -> None:
    MemberFactory.create_batch(2, club=club)
    GroupFactory(club=club, name="VIP")

    groups = listed(admin_client, f"?club={club.pk}&system__exact=1")

    assert groups == [all_members]
    assert groups[0].members_count == 2
    assert b"All members" in admin_client.get(changelist_url()).content


def test_creating_a_group_in_the_admin_gives_it_an_audience_of_its_own_members(
    admin_client: Client, club: Club
) -> None:
    response = admin_client.post(
        reverse("admin:groups_membersgroup_add"),
        {"club": club.pk, "name": "VIP", "type": "Tier", "description": "Best customers"},
    )

    assert response.status_code == 302
    group = MembersGroup.objects.get(club=club, name="VIP")
    assert (group.type, group.description, group.automatic, group.system) == (
        "Tier",
        "Best customers",
        False,
        False,
    )
    assert group.audience.conditions == services.membership_rule(group.pk)


def test_editing_a_manual_group_changes_its_name_type_and_description_only(
    admin_client: Client, club: Club, other_club: Club
) -> None:
    group = GroupFactory(club=club, name="Old", type="Color")

    response = admin_client.post(
        change_url(group),
        {"club": other_club.pk, "name": "New", "type": "Tier", "description": "Renamed"},
    )

    assert response.status_code == 302
    group.refresh_from_db()
    assert (group.name, group.type, group.description, group.club) == (
        "New",
        "Tier",
        "Renamed",
        club,
    )


def test_creating_a_group_with_conditions_makes_an_automatic_group_of_the_matching_members(
    admin_client: Client, club: Club
) -> None:
    gold = MemberFactory(club=club, email="ann@gold.example")
    MemberFactory(club=club, email="bob@example.com")
    conditions = [cond("string", "email", "match", "@gold.example")]

    response = admin_client.post(
        reverse("admin:groups_membersgroup_add"),
        {
            "club": club.pk,
            "name": "Gold",
            "type": "Tier",
            "description": "",
            "audience_conditions": json.dumps(conditions),
        },
    )

    assert response.status_code == 302
    group = MembersGroup.objects.get(club=club, name="Gold")
    assert group.automatic
    assert group.audience.conditions == conditions
    assert member_ids(group) == {gold.pk}
    assert_consistent(group)


def test_a_new_group_may_follow_an_audience_of_its_club(
    admin_client: Client, club: Club, other_club: Club
) -> None:
    gold = MemberFactory(club=club, email="ann@gold.example")
    MemberFactory(club=club, email="bob@example.com")
    rule = [cond("string", "email", "match", "@gold.example")]
    audience = audience_services.create_audience(club=club, name="Gold", conditions=rule)
    elsewhere = audience_services.create_audience(club=other_club, name="Far", conditions=rule)
    form = {"club": club.pk, "name": "Gold", "type": "", "description": ""}

    page = admin_client.get(reverse("admin:groups_membersgroup_add")).content.decode()
    refused = admin_client.post(
        reverse("admin:groups_membersgroup_add"), {**form, "audience_id": elsewhere.pk}
    )
    response = admin_client.post(
        reverse("admin:groups_membersgroup_add"), {**form, "audience_id": audience.pk}
    )

    assert f"Gold ({club}, id {audience.pk})" in page
    assert refused.status_code == 200
    assert "audience_id" in refused.context["adminform"].form.errors
    assert response.status_code == 302
    group = MembersGroup.objects.get(club=club, name="Gold")
    assert (group.automatic, group.audience_id) == (True, audience.pk)
    assert member_ids(group) == {gold.pk}
    assert_consistent(group)


def test_staff_are_offered_only_the_audiences_of_their_clubs(
    staff_client: Client, club: Club, other_club: Club
) -> None:
    mine = audience_services.create_audience(club=club, name="Mine", conditions=[])
    theirs = audience_services.create_audience(club=other_club, name="Theirs", conditions=[])

    page = staff_client.get(reverse("admin:groups_membersgroup_add"))
    forged = staff_client.post(
        reverse("admin:groups_membersgroup_add"),
        {
            "club": club.pk,
            "name": "Sneaky",
            "type": "",
            "description": "",
            "audience_id": theirs.pk,
        },
    )

    choices = {
        value for value, _label in page.context["adminform"].form.fields["audience_id"].choices
    }
    # Its club's audiences made as such, not the groups' own ("All members"' is one).
    assert {str(getattr(v, "value", v)) for v in choices} == {"", str(mine.pk)}
    assert "audience_id" in forged.context["adminform"].form.errors
    assert not MembersGroup.objects.filter(name="Sneaky").exists()


def test_malformed_conditions_are_a_readable_form_error_and_no_group_is_made(
    admin_client: Client, club: Club
) -> None:
    conditions = [cond("string", "email", "bogus", "x"), cond("array", "x", "any", [1])]
    conditions[1] = in_groups(999999)

    response = admin_client.post(
        reverse("admin:groups_membersgroup_add"),
        {
            "club": club.pk,
            "name": "Broken",
            "type": "",
            "description": "",
            "audience_conditions": json.dumps(conditions),
        },
    )

    assert response.status_code == 200
    errors = response.context["adminform"].form.errors["audience_conditions"]
    assert errors[0].startswith("item 0 > operator: Not one of the allowed values. (allowed: eq")
    assert not MembersGroup.objects.filter(name="Broken").exists()


def test_changing_an_automatic_groups_conditions_recomputes_its_members(
    admin_client: Client, club: Club
) -> None:
    ann = MemberFactory(club=club, email="ann@gold.example")
    bob = MemberFactory(club=club, email="bob@silver.example")
    group = services.create_group(
        club=club, name="Tier", audience_conditions=[cond("string", "email", "match", "gold")]
    )
    edit = admin_client.get(change_url(group))
    assert "gold" in edit.context["adminform"].form["audience_conditions"].value()

    response = admin_client.post(
        change_url(group),
        {
            "name": "Tier",
            "type": "",
            "description": "",
            "audience_conditions": json.dumps([cond("string", "email", "match", "silver")]),
        },
    )

    assert response.status_code == 302
    assert member_ids(group) == {bob.pk}
    assert ann.pk not in member_ids(group)
    assert_consistent(group)


def test_conditions_that_would_make_a_cycle_are_refused_with_the_cycle_named(
    admin_client: Client, club: Club
) -> None:
    base = GroupFactory(club=club, name="Base")
    first = services.create_group(club=club, name="First", audience_conditions=[in_groups(base.pk)])
    second = services.create_group(
        club=club, name="Second", audience_conditions=[in_groups(first.pk)]
    )

    response = admin_client.post(
        change_url(first),
        {
            "name": "First",
            "type": "",
            "description": "",
            "audience_conditions": json.dumps([in_groups(second.pk)]),
        },
    )

    assert response.status_code == 200
    errors = response.context["adminform"].form.errors["audience_conditions"]
    assert errors[0].startswith("These conditions would make a cycle of groups.")
    first.refresh_from_db()
    assert first.audience.conditions == [in_groups(base.pk)]


def test_a_group_used_by_other_groups_conditions_is_not_deleted_and_the_list_says_why(
    admin_client: Client, club: Club
) -> None:
    base = GroupFactory(club=club, name="Base")
    services.create_group(club=club, name="Follower", audience_conditions=[in_groups(base.pk)])

    response = admin_client.post(
        changelist_url(),
        {"action": "delete_selected", "_selected_action": [base.pk], "post": "yes"},
        follow=True,
    )

    assert MembersGroup.objects.filter(pk=base.pk).exists()
    assert "used by the conditions of: Follower" in response.content.decode()


@pytest.mark.parametrize("user", ["admin_client", "staff_client"])
def test_a_system_group_cannot_be_changed_or_deleted_in_the_admin(
    user: str, request: pytest.FixtureRequest, club: Club, all_members: MembersGroup
) -> None:
    client: Client = request.getfixturevalue(user)
    MemberFactory(club=club)
    before = MembersGroup.objects.filter(pk=all_members.pk).values().get()

    change = client.post(
        change_url(all_members), {"name": "Renamed", "type": "x", "description": "x"}
    )
    delete = client.post(delete_url(all_members), {"post": "yes"})
    bulk_delete = client.post(
        changelist_url(),
        {"action": "delete_selected", "_selected_action": [all_members.pk], "post": "yes"},
    )

    assert change.status_code == 403
    assert delete.status_code == 403
    assert bulk_delete.status_code == 200
    assert b"cannot be deleted" in bulk_delete.content
    assert MembersGroup.objects.filter(pk=all_members.pk).values().get() == before
    assert client.get(change_url(all_members)).status_code == 200


def test_deleting_manual_groups_in_bulk_records_every_member_leaving(
    admin_client: Client, club: Club
) -> None:
    red, blue = GroupFactory.create_batch(2, club=club)
    member = MemberFactory(club=club)
    services.add_member_ids(group=red, member_ids=[member.pk], source=Source.API)
    action = {"action": "delete_selected", "_selected_action": [red.pk, blue.pk]}

    confirmation = admin_client.post(changelist_url(), action)
    response = admin_client.post(changelist_url(), {**action, "post": "yes"})

    assert b"whose 1 members leave it" in confirmation.content
    assert response.status_code == 302
    assert not MembersGroup.objects.filter(pk__in=[red.pk, blue.pk]).exists()
    leave = MembershipEvent.objects.get(group_id=red.pk, kind=EventKind.LEFT)
    assert (leave.member_id, leave.source, leave.actor) == (member.pk, "admin", "user:admin")


def test_pasting_emails_adds_members_and_reports_those_not_found_or_invalid(
    admin_client: Client, club: Club
) -> None:
    group = GroupFactory(club=club)
    ann = MemberFactory(club=club, email="ann@example.com")
    bob = MemberFactory(club=club, email="bob@example.com")
    services.add_member_ids(group=group, member_ids=[bob.pk], source=Source.API)

    response = admin_client.post(
        members_url(group),
        {
            "action": "add",
            "identifier_type": "email",
            "identifiers": "ANN@example.com\nbob@example.com\n\nnobody@example.com\nnot-an-email",
        },
        follow=True,
    )

    assert response.redirect_chain == [(members_url(group), 302)]
    counts = dict(response.context["result"]["counts"])
    assert (counts["Added"], counts["Already members"]) == (1, 1)
    assert response.context["result"]["not_found"] == ["nobody@example.com"]
    assert response.context["result"]["invalid"] == ["not-an-email"]
    assert b"nobody@example.com" in response.content
    assert b"not-an-email" in response.content
    group.refresh_from_db()
    assert group.members_count == 2
    assert member_ids(group) == {ann.pk, bob.pk}


def test_pasting_ids_removes_members_and_reports_those_not_in_the_group(
    admin_client: Client, club: Club
) -> None:
    group = GroupFactory(club=club)
    inside, outside = MemberFactory.create_batch(2, club=club)
    services.add_member_ids(group=group, member_ids=[inside.pk], source=Source.API)

    response = admin_client.post(
        members_url(group),
        {
            "action": "remove",
            "identifier_type": "id",
            "identifiers": f"{inside.pk}\n{outside.pk}\n999999999\nabc",
        },
        follow=True,
    )

    assert dict(response.context["result"]["counts"]) == {"Removed": 1, "Not members": 1}
    assert response.context["result"]["not_found"] == ["999999999"]
    assert response.context["result"]["invalid"] == ["abc"]
    group.refresh_from_db()
    assert group.members_count == 0
    assert member_ids(group) == set()


def test_a_csv_upload_adds_the_members_of_its_first_column_after_the_header(
    admin_client: Client, club: Club
) -> None:
    group = GroupFactory(club=club)
    ann = MemberFactory(club=club, email=None, msisdn="4740769126")
    upload = SimpleUploadedFile(
        "members.csv",
        "\ufeffmsisdn;name\r\n+47 407 69 126;Ann\r\n+47 999 99 999;Nobody\r\n".encode(),
        content_type="text/csv",
    )

    response = admin_client.post(
        members_url(group),
        {"action": "add", "identifier_type": "msisdn", "csv_file": upload},
        follow=True,
    )

    assert dict(response.context["result"]["counts"])["Added"] == 1
    assert response.context["result"]["not_found"] == ["+47 999 99 999"]
    assert response.context["result"]["invalid"] == []
    assert member_ids(group) == {ann.pk}


def test_a_file_that_is_not_utf8_is_a_form_error(admin_client: Client, club: Club) -> None:
    group = GroupFactory(club=club)
    upload = SimpleUploadedFile("members.csv", "åse@example.com\n".encode("latin-1"))

    response = admin_client.post(
        members_url(group), {"action": "add", "identifier_type": "email", "csv_file": upload}
    )

    assert response.status_code == 200
    assert "csv_file" in response.context["form"].errors
    assert response.context["result"] is None


def test_more_identifiers_than_the_limit_are_refused_and_nothing_changes(
    admin_client: Client, club: Club, settings: Settings
) -> None:
    settings.BULK_IDENTIFIERS_MAX = 2
    group = GroupFactory(club=club)
    members = MemberFactory.create_batch(3, club=club)

    response = admin_client.post(
        members_url(group),
        {
            "action": "add",
            "identifier_type": "id",
            "identifiers": "\n".join(str(m.pk) for m in members),
        },
    )

    assert response.status_code == 200
    assert "At most 2 identifiers" in str(response.context["form"].non_field_errors())
    assert member_ids(group) == set()


def test_the_members_page_lists_members_page_by_page_from_the_stored_count(
    admin_client: Client, club: Club, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(groups_admin, "MEMBERS_PER_PAGE", 2)
    group = GroupFactory(club=club)
    members = MemberFactory.create_batch(3, club=club)
    services.add_member_ids(group=group, member_ids=[m.pk for m in members], source=Source.API)

    first = admin_client.get(members_url(group))
    second = admin_client.get(members_url(group) + first.context["next_members_url"])

    assert [m.pk for m, _joined in first.context["members"]] == [members[0].pk, members[1].pk]
    assert [m.pk for m, _joined in second.context["members"]] == [members[2].pk]
    assert second.context["next_members_url"] is None
    assert b"Members (3)" in first.content


def test_the_membership_history_shows_adds_and_removes_newest_first(
    admin_client: Client, club: Club
) -> None:
    group = GroupFactory(club=club)
    member = MemberFactory(club=club, email="ann@example.com")
    for action in ("add", "remove"):
        admin_client.post(
            members_url(group),
            {"action": action, "identifier_type": "email", "identifiers": "ann@example.com"},
        )

    response = admin_client.get(members_url(group))

    events = [(e.kind, e.member_id, e.source, e.actor) for e in response.context["events"]]
    assert events == [
        (EventKind.LEFT, member.pk, "admin", "user:admin"),
        (EventKind.JOINED, member.pk, "admin", "user:admin"),
    ]
    assert b"Membership history" in response.content
    assert b"user:admin" in response.content


def test_finding_a_member_by_any_spelling_shows_whether_it_is_in_the_group(
    admin_client: Client, club: Club
) -> None:
    group = GroupFactory(club=club)
    ann = MemberFactory(club=club, msisdn="4740769126")

    response = admin_client.get(members_url(group), {"q": "+47 407 69 126"})

    assert response.context["found"] == [(ann, False)]


@pytest.mark.parametrize("kind", ["system", "automatic"])
def test_system_and_automatic_groups_show_their_members_but_refuse_bulk_changes(
    kind: str, admin_client: Client, club: Club, all_members: MembersGroup
) -> None:
    member = MemberFactory(club=club, email="ann@example.com")
    group = (
        all_members
        if kind == "system"
        else services.create_group(
            club=club, name="Ann", audience_conditions=[cond("string", "email", "eq", member.email)]
        )
    )

    page = admin_client.get(members_url(group))
    post = admin_client.post(
        members_url(group),
        {"action": "remove", "identifier_type": "id", "identifiers": str(member.pk)},
    )

    assert page.status_code == 200
    assert [m.pk for m, _joined in page.context["members"]] == [member.pk]
    assert b"bulk-members-form" not in page.content
    assert post.status_code == 403
    group.refresh_from_db()
    assert group.members_count == 1
    assert member_ids(group) == {member.pk}


def test_staff_see_and_reach_only_the_groups_of_their_clubs(
    staff_client: Client, club: Club, other_club: Club
) -> None:
    mine = GroupFactory(club=club)
    theirs = GroupFactory(club=other_club)
    stranger = MemberFactory(club=other_club, email="stranger@example.com")

    assert set(listed(staff_client)) == set(MembersGroup.objects.filter(club=club))
    assert listed(staff_client, f"?club={other_club.pk}") == []
    assert staff_client.get(change_url(mine)).status_code == 200
    assert staff_client.get(change_url(theirs)).status_code == 302
    assert staff_client.get(delete_url(theirs)).status_code == 302
    assert staff_client.get(members_url(theirs)).status_code == 404
    post = staff_client.post(
        members_url(theirs),
        {"action": "add", "identifier_type": "email", "identifiers": "stranger@example.com"},
    )
    assert post.status_code == 404
    assert stranger.pk not in member_ids(theirs)


def test_staff_who_may_only_view_see_an_automatic_groups_conditions_read_only(
    staff_client: Client, club: Club
) -> None:
    viewer = get_user_model().objects.get(username="carol")
    viewer.user_permissions.set(Permission.objects.filter(codename="view_membersgroup"))
    group = services.create_group(
        club=club, name="Gold", audience_conditions=[cond("string", "email", "match", "@gold")]
    )

    page = staff_client.get(change_url(group))
    post = staff_client.post(change_url(group), {"name": "Renamed", "type": "", "description": ""})

    assert page.status_code == 200
    assert "@gold" in page.content.decode()
    assert post.status_code == 403
    group.refresh_from_db()
    assert group.name == "Gold"


def test_staff_cannot_create_a_group_in_another_club(
    staff_client: Client, other_club: Club
) -> None:
    response = staff_client.post(
        reverse("admin:groups_membersgroup_add"),
        {"club": other_club.pk, "name": "Sneaky", "type": "", "description": ""},
    )

    assert response.status_code == 200
    assert "club" in response.context["adminform"].form.errors
    assert not MembersGroup.objects.filter(name="Sneaky").exists()


def preview_url() -> str:
    return reverse("admin:groups_membersgroup_preview")


def test_the_conditions_are_previewed_before_saving_with_the_impact_on_the_group(
    admin_client: Client, club: Club
) -> None:
    ann = MemberFactory(club=club, email="ann@gold.example")
    MemberFactory(club=club, email="bob@silver.example")
    group = services.create_group(
        club=club, name="Tier", audience_conditions=[cond("string", "email", "match", "gold")]
    )
    page = admin_client.get(change_url(group)).content.decode()
    assert 'id="rule-preview"' in page
    assert preview_url() in page

    new = admin_client.post(
        preview_url(),
        {"club": club.pk, "conditions": json.dumps([cond("string", "email", "match", "@")])},
    )
    changed = admin_client.post(
        preview_url(),
        {
            "club": club.pk,
            "group": group.pk,
            "conditions": json.dumps([cond("string", "email", "match", "silver")]),
        },
    )

    assert new.json() == {"count": 2, "words": "email contains '@'"}
    assert changed.json() == {
        "count": 1,
        "words": "email contains 'silver'",
        "joining": 1,
        "leaving": 1,
    }
    assert member_ids(group) == {ann.pk}, "a preview saves nothing"


def test_a_bad_condition_in_the_preview_is_a_readable_error(
    admin_client: Client, club: Club
) -> None:
    response = admin_client.post(
        preview_url(),
        {"club": club.pk, "conditions": json.dumps([cond("number", "points", "gt", "x")])},
    )
    assert response.status_code == 422
    assert response.json() == {
        "error": "item 0 > value: Not a number.",
        "errors": [{"path": ["0", "value"], "message": "Not a number."}],
    }


@pytest.mark.parametrize(
    ("value", "error"),
    [
        ('"a\\u0000b"', "Null characters are not allowed."),
        ('"\\ud800"', "Lone surrogate characters are not allowed."),
        ("NaN", "Numbers must be finite."),
    ],
)
def test_a_value_postgresql_cannot_store_in_the_preview_is_a_readable_error(
    admin_client: Client, club: Club, value: str, error: str
) -> None:
    condition = (
        '[{"condition_group": "member_properties", "type": "string", "field": "city", '
        f'"operator": "eq", "value": {value}}}]'
    )

    response = admin_client.post(preview_url(), {"club": club.pk, "conditions": condition})

    assert response.status_code == 422
    assert response.json() == {"error": error}


def test_conditions_too_deep_for_the_decoder_are_a_readable_error(
    admin_client: Client, club: Club
) -> None:
    response = admin_client.post(
        preview_url(), {"club": club.pk, "conditions": "[" * 100_000 + "]" * 100_000}
    )

    assert response.status_code == 400
    assert response.json() == {"error": "The conditions are not valid JSON."}


def test_staff_cannot_preview_against_another_club(staff_client: Client, other_club: Club) -> None:
    MemberFactory(club=other_club)
    response = staff_client.post(preview_url(), {"club": other_club.pk, "conditions": "[]"})
    assert response.status_code == 400
    assert "count" not in response.json()


def test_a_group_page_links_its_dependencies_and_dependants_and_shows_recomputing(
    admin_client: Client, club: Club
) -> None:
    base = GroupFactory(club=club, name="Base")
    middle = services.create_group(
        club=club, name="Middle", audience_conditions=[in_groups(base.pk)]
    )
    services.create_group(club=club, name="Top", audience_conditions=[in_groups(middle.pk)])

    page = admin_client.get(change_url(middle)).content.decode()

    assert f'<a href="{change_url(base)}">Base</a>' in page
    top = MembersGroup.objects.get(name="Top")
    assert f'<a href="{change_url(top)}">Top</a>' in page
    assert "Recomputing" in page
