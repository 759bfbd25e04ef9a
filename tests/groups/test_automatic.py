"""Automatic groups: computed from their rule, kept current incrementally, dependencies."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from audiences import services as audience_services
from groups import services
from groups.models import EventKind, MembersGroup, Membership, MembershipEvent, Source
from loyalty.errors import InvalidParameters
from loyalty.models import Club
from members import services as member_services
from members.models import Member
from tests.factories import GroupFactory, MemberFactory
from tests.helpers import assert_consistent, cond, in_groups

pytestmark = pytest.mark.django_db


def member_ids(group: MembersGroup) -> set[int]:
    return set(Membership.objects.filter(group=group).values_list("member_id", flat=True))


def test_creating_an_automatic_group_computes_its_members(club: Club) -> None:
    ola = MemberFactory(club=club, properties={"first_name": "Ola"})
    MemberFactory(club=club, properties={"first_name": "Kari"})

    group = services.create_group(
        club=club, name="Olas", audience_conditions=[cond("string", "first_name", "eq", "Ola")]
    )

    assert group.automatic
    assert member_ids(group) == {ola.pk}
    assert_consistent(group)
    assert set(
        MembershipEvent.objects.filter(group_id=group.pk).values_list("source", flat=True)
    ) == {Source.RULE}


def test_a_group_can_follow_an_existing_audience(club: Club) -> None:
    audience = audience_services.create_audience(
        club=club, name="Golfers", conditions=[cond("array", "interests", "any", ["golf"])]
    )
    golfer = MemberFactory(club=club, properties={"interests": ["golf"]})
    first = services.create_group(club=club, name="A", audience_id=audience.pk)
    second = services.create_group(club=club, name="B", audience_id=audience.pk)
    assert member_ids(first) == member_ids(second) == {golfer.pk}


def test_bad_conditions_are_refused_with_details_by_index(club: Club) -> None:
    with pytest.raises(InvalidParameters) as excinfo:
        services.create_group(
            club=club,
            name="Bad",
            audience_conditions=[
                cond("string", "first_name", "eq", "Ola"),
                cond("string", "first_name", "shout", "x"),
            ],
        )
    assert excinfo.value.details == {
        "audience_conditions": {
            "1": {
                "operator": [
                    {
                        "error": "inclusion",
                        "options": {
                            "allowed": [
                                "eq",
                                "not_eq",
                                "in",
                                "not_in",
                                "match",
                                "starts_with",
                                "present",
                                "blank",
                            ]
                        },
                    }
                ]
            }
        }
    }
    assert not MembersGroup.objects.filter(name="Bad").exists()


def test_a_chain_follows_a_manual_change_in_dependency_order(club: Club) -> None:
    c_group = GroupFactory(club=club, name="C")
    b_group = services.create_group(
        club=club, name="B", audience_conditions=[in_groups(c_group.pk)]
    )
    a_group = services.create_group(
        club=club,
        name="A",
        audience_conditions=[in_groups(b_group.pk), cond("string", "email", "match", "@gold")],
    )
    gold, plain = (
        MemberFactory(club=club, email="ann@gold.example"),
        MemberFactory(club=club, email="bob@plain.example"),
    )

    services.add_member_ids(group=c_group, member_ids=[gold.pk, plain.pk], source=Source.API)
    assert member_ids(b_group) == {gold.pk, plain.pk}
    assert member_ids(a_group) == {gold.pk}

    services.remove_member_ids(group=c_group, member_ids=[gold.pk], source=Source.API)
    assert member_ids(b_group) == {plain.pk}
    assert member_ids(a_group) == set()
    for group in (a_group, b_group, c_group):
        assert_consistent(group)


def test_a_cycle_is_refused_naming_it(club: Club) -> None:
    base = GroupFactory(club=club, name="Base")
    b_group = services.create_group(club=club, name="B", audience_conditions=[in_groups(base.pk)])
    a_group = services.create_group(
        club=club, name="A", audience_conditions=[in_groups(b_group.pk)]
    )

    with pytest.raises(InvalidParameters) as excinfo:
        services.update_group(group=b_group, audience_conditions=[in_groups(a_group.pk)])

    assert excinfo.value.details == {
        "audience_conditions": [
            {
                "error": "cycle",
                "options": {
                    "members_group_ids": [b_group.pk, a_group.pk, b_group.pk],
                    "path": f"B ({b_group.pk}) -> A ({a_group.pk}) -> B ({b_group.pk})",
                },
            }
        ]
    }
    b_group.refresh_from_db()
    assert b_group.audience.conditions == [in_groups(base.pk)]


def test_a_group_used_by_another_groups_rule_cannot_be_deleted(club: Club) -> None:
    base = GroupFactory(club=club, name="Base")
    services.create_group(club=club, name="User", audience_conditions=[in_groups(base.pk)])
    with pytest.raises(services.GroupInUse) as excinfo:
        services.delete_group(group=base, source=Source.API)
    assert "User" in excinfo.value.message
    assert MembersGroup.objects.filter(pk=base.pk).exists()


def test_unknown_group_references_are_refused(club: Club, other_club: Club) -> None:
    foreign = GroupFactory(club=other_club)
    with pytest.raises(InvalidParameters) as excinfo:
        services.create_group(club=club, name="X", audience_conditions=[in_groups(foreign.pk)])
    assert excinfo.value.details == {
        "audience_conditions": [
            {"error": "unknown_members_group", "options": {"ids": [foreign.pk]}}
        ]
    }


def test_member_changes_update_automatic_groups_in_the_same_call(
    club: Club, all_members: MembersGroup
) -> None:
    group = services.create_group(
        club=club, name="Gold", audience_conditions=[cond("string", "email", "match", "@gold")]
    )
    member = member_services.create_member(club=club, email="ann@gold.example", source="api")
    assert member_ids(group) == {member.pk}

    member_services.update_member(member=member, email="ann@plain.example", source="api")
    assert member_ids(group) == set()

    member_services.update_member(member=member, email="ann@gold.example", source="api")
    member_services.delete_member(member=member, source="api")
    assert member_ids(group) == set()
    for checked in (group, all_members):
        assert_consistent(checked)
    kinds = list(
        MembershipEvent.objects.filter(group_id=group.pk)
        .order_by("id")
        .values_list("kind", flat=True)
    )
    assert kinds == [EventKind.JOINED, EventKind.LEFT, EventKind.JOINED, EventKind.LEFT]


def test_updating_a_member_runs_the_same_queries_however_many_members(club: Club) -> None:
    for n in range(3):
        services.create_group(
            club=club, name=f"G{n}", audience_conditions=[cond("number", "points", "gt", n)]
        )
    member = MemberFactory(club=club, properties={"points": 0})

    def queries_for_update(points: int) -> int:
        with CaptureQueriesContext(connection) as captured:
            member_services.update_member(
                member=member, properties={"points": points}, source="api"
            )
        return len(captured)

    def round_trip() -> tuple[int, int]:
        """Join all three groups, then leave them: the same work each time."""
        return queries_for_update(10), queries_for_update(0)

    before = round_trip()
    member_services.bulk_create_members(
        club=club,
        members=[Member(email=f"bulk{i}@example.com") for i in range(300)],
        source="import",
    )
    assert round_trip() == before


def test_recompute_writes_only_rows_that_change_and_twice_changes_nothing(club: Club) -> None:
    members = [MemberFactory(club=club, properties={"points": p}) for p in (1, 5, 9)]
    group = services.create_group(
        club=club, name="High", audience_conditions=[cond("number", "points", "gte", 5)]
    )
    first_row = Membership.objects.get(group=group, member=members[2])

    services.update_group(group=group, audience_conditions=[cond("number", "points", "gte", 9)])
    services.update_group(group=group, audience_conditions=[cond("number", "points", "gte", 9)])
    diff = services.recompute_group(group_id=group.pk)

    assert member_ids(group) == {members[2].pk}
    assert Membership.objects.get(group=group, member=members[2]).pk == first_row.pk
    assert (diff.joined, diff.left) == ([], [])
    assert MembershipEvent.objects.filter(group_id=group.pk, kind=EventKind.LEFT).count() == 1
    assert_consistent(group)


def test_changing_a_followed_audience_recomputes_its_groups(club: Club) -> None:
    audience = audience_services.create_audience(
        club=club, conditions=[cond("string", "first_name", "eq", "Ola")]
    )
    ola = MemberFactory(club=club, properties={"first_name": "Ola"})
    kari = MemberFactory(club=club, properties={"first_name": "Kari"})
    group = services.create_group(club=club, name="F", audience_id=audience.pk)
    assert member_ids(group) == {ola.pk}

    audience_services.update_audience(
        audience=audience, conditions=[cond("string", "first_name", "eq", "Kari")]
    )

    assert member_ids(group) == {kari.pk}
    assert_consistent(group)


def test_an_audience_with_its_own_conditions_is_followed_and_with_others_refused(
    club: Club,
) -> None:
    rule = [cond("string", "first_name", "eq", "Ola")]
    audience = audience_services.create_audience(club=club, conditions=rule)

    group = services.create_group(
        club=club, name="Both", audience_id=audience.pk, audience_conditions=rule
    )

    assert group.audience_id == audience.pk
    with pytest.raises(InvalidParameters) as excinfo:
        services.create_group(
            club=club, name="Other", audience_id=audience.pk, audience_conditions=[]
        )
    assert excinfo.value.details == {
        "audience_conditions": [
            {"error": "not_the_audiences", "options": {"audience_id": audience.pk}}
        ]
    }
