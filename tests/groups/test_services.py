"""Membership services: rows, counts and history stay consistent through every write."""

from __future__ import annotations

import pytest
from django.db import IntegrityError, transaction

from groups import services
from groups.models import EventKind, MembersGroup, Membership, MembershipEvent, Source
from loyalty.errors import InvalidParameters
from loyalty.models import Club
from members import services as member_services
from members.models import Member
from tests.factories import GroupFactory, MemberFactory
from tests.helpers import assert_consistent

pytestmark = pytest.mark.django_db


def test_a_new_club_has_an_all_members_system_group(club: Club, all_members: MembersGroup) -> None:
    assert all_members.system
    assert all_members.automatic
    assert all_members.name == "All members"
    assert all_members.members_count == 0


def test_creating_and_deleting_members_keeps_all_members_exact(
    club: Club, all_members: MembersGroup
) -> None:
    members = MemberFactory.create_batch(3, club=club)
    all_members.refresh_from_db()
    assert all_members.members_count == 3

    member_services.delete_member(member=members[0], source=Source.API)

    assert_consistent(all_members)
    assert all_members.members_count == 2


def test_bulk_created_members_join_all_members_in_one_go(
    club: Club, all_members: MembersGroup
) -> None:
    ids = member_services.bulk_create_members(
        club=club,
        members=[Member(email=f"bulk{i}@example.com") for i in range(50)],
        source=Source.IMPORT,
    )
    assert len(ids) == 50
    assert_consistent(all_members)
    assert all_members.members_count == 50
    # The system keeps "All members", whichever door the members came through.
    assert set(
        MembershipEvent.objects.filter(group_id=all_members.pk).values_list("source", flat=True)
    ) == {Source.SYSTEM}


def test_a_manual_group_gets_an_audience_of_its_own_members(club: Club) -> None:
    group = services.create_group(club=club, name="Red", type="Color")
    assert not group.automatic
    assert not group.system
    assert group.audience.conditions == [
        {
            "condition_group": "member_properties",
            "type": "array",
            "field": "members_group_ids",
            "operator": "any",
            "value": [group.pk],
        }
    ]


def test_adding_members_by_email_reports_added_known_unknown_and_invalid(club: Club) -> None:
    group = GroupFactory(club=club)
    ann = MemberFactory(club=club, email="ann@example.com")
    MemberFactory(club=club, email="bob@example.com")

    result = services.add_members(
        group=group,
        identifier_type="email",
        identifiers=[" ANN@example.com", "ann@example.com", "nobody@example.com", "not-an-email"],
        source=Source.API,
    )

    assert result.changed == 1
    assert result.unchanged == 0
    assert result.not_found == ["nobody@example.com"]
    assert result.invalid == ["not-an-email"]
    assert list(group.memberships.values_list("member_id", flat=True)) == [ann.pk]
    assert_consistent(group)


def test_re_adding_existing_members_changes_nothing(club: Club) -> None:
    group = GroupFactory(club=club)
    members = MemberFactory.create_batch(3, club=club)
    ids = [m.pk for m in members]
    assert services.add_member_ids(group=group, member_ids=ids, source=Source.API) == 3
    events_before = MembershipEvent.objects.count()

    result = services.add_members(
        group=group, identifier_type="id", identifiers=[str(i) for i in ids], source=Source.API
    )

    assert (result.changed, result.unchanged) == (0, 3)
    assert MembershipEvent.objects.count() == events_before
    assert_consistent(group)
    assert group.members_count == 3


def test_removing_non_members_changes_nothing_and_is_reported(club: Club) -> None:
    group = GroupFactory(club=club)
    inside, outside = MemberFactory.create_batch(2, club=club)
    services.add_member_ids(group=group, member_ids=[inside.pk], source=Source.ADMIN)

    result = services.remove_members(
        group=group,
        identifier_type="msisdn",
        identifiers=["+47 407 69 126"],
        source=Source.ADMIN,
    )
    assert (result.changed, result.unchanged, result.not_found) == (0, 0, ["+47 407 69 126"])

    result = services.remove_members(
        group=group, identifier_type="id", identifiers=[inside.pk, outside.pk], source=Source.ADMIN
    )
    assert (result.changed, result.unchanged) == (1, 1)
    assert_consistent(group)
    assert group.members_count == 0


def test_members_of_another_club_are_not_found_and_never_added(
    club: Club, other_club: Club
) -> None:
    group = GroupFactory(club=club)
    stranger = MemberFactory(club=other_club, email="stranger@example.com")

    for identifier_type, identifier in (("email", stranger.email), ("id", stranger.pk)):
        result = services.add_members(
            group=group,
            identifier_type=identifier_type,
            identifiers=[identifier],
            source=Source.API,
        )
        assert result.not_found == [identifier]
    assert services.add_member_ids(group=group, member_ids=[stranger.pk], source=Source.API) == 0
    assert_consistent(group)
    assert group.members_count == 0


def test_deleting_a_member_records_a_leave_in_every_group_it_was_in(
    club: Club, all_members: MembersGroup
) -> None:
    red, blue = GroupFactory.create_batch(2, club=club)
    member = MemberFactory(club=club)
    for group in (red, blue):
        services.add_member_ids(group=group, member_ids=[member.pk], source=Source.API)

    member_id = member.pk
    member_services.delete_member(member=member, source=Source.ADMIN, actor="user:staff")

    leaves = MembershipEvent.objects.filter(member_id=member_id, kind=EventKind.LEFT)
    assert sorted(leaves.values_list("group_id", flat=True)) == sorted(
        [red.pk, blue.pk, all_members.pk]
    )
    assert set(leaves.values_list("actor", flat=True)) == {"user:staff"}
    for group in (red, blue, all_members):
        assert_consistent(group)


def test_system_and_automatic_groups_refuse_manual_membership_changes(
    club: Club, all_members: MembersGroup
) -> None:
    member = MemberFactory(club=club)
    with pytest.raises(services.GroupIsSystem):
        services.remove_member_ids(group=all_members, member_ids=[member.pk], source=Source.API)
    with pytest.raises(services.GroupIsSystem):
        services.update_group(group=all_members, name="Renamed")
    with pytest.raises(services.GroupIsSystem):
        services.delete_group(group=all_members, source=Source.API)
    all_members.refresh_from_db()
    assert all_members.name == "All members"
    assert_consistent(all_members)


def test_deleting_a_group_records_leaves_and_removes_its_audience(club: Club) -> None:
    group = GroupFactory(club=club)
    members = MemberFactory.create_batch(2, club=club)
    services.add_member_ids(group=group, member_ids=[m.pk for m in members], source=Source.API)
    audience_id = group.audience_id

    services.delete_group(group=group, source=Source.API)

    assert not MembersGroup.objects.filter(pk=group.pk).exists()
    assert not Membership.objects.filter(group_id=group.pk).exists()
    assert MembershipEvent.objects.filter(group_id=group.pk, kind=EventKind.LEFT).count() == 2
    assert not group.audience.__class__.objects.filter(pk=audience_id).exists()


def test_updating_a_manual_group_refuses_audience_fields(club: Club) -> None:
    group = GroupFactory(club=club, name="Old")
    with pytest.raises(InvalidParameters) as excinfo:
        services.update_group(group=group, name="New", audience_conditions=[])
    assert excinfo.value.details == {
        "audience_conditions": [{"error": "not_allowed_for_manual_group", "options": {}}]
    }
    group.refresh_from_db()
    assert group.name == "Old"


def test_a_membership_across_clubs_cannot_be_written_even_by_the_orm(
    club: Club, other_club: Club
) -> None:
    group = GroupFactory(club=club)
    stranger = MemberFactory(club=other_club)
    for owner in (club, other_club):
        with pytest.raises(IntegrityError), transaction.atomic():
            Membership.objects.create(club=owner, group=group, member=stranger)
    assert not Membership.objects.filter(group=group).exists()


def test_a_group_cannot_use_an_audience_of_another_club(club: Club, other_club: Club) -> None:
    foreign_audience = GroupFactory(club=other_club).audience
    with pytest.raises(IntegrityError), transaction.atomic():
        MembersGroup.objects.create(club=club, name="Sneaky", audience=foreign_audience)
