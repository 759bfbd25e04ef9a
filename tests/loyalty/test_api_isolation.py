"""Two clubs side by side: nothing one club's caller does reads, changes or reveals the other's."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from rest_framework.test import APIClient

from audiences.models import Audience
from audiences.services import create_audience
from groups import services as group_services
from groups.models import MembersGroup, Membership, MembershipEvent
from loyalty.models import ApiToken, Club
from members.models import Member
from tests.factories import GroupFactory, MemberFactory
from tests.helpers import in_groups

pytestmark = pytest.mark.django_db


@dataclass(frozen=True)
class Side:
    club: Club
    group: MembersGroup
    member: Member
    audience: Audience


def side(club: Club, email: str, msisdn: str) -> Side:
    member = MemberFactory(club=club, email=email, msisdn=msisdn)
    group = GroupFactory(club=club, name="Red", type="Color")
    group_services.add_member_ids(group=group, member_ids=[member.pk], source="api")
    audience = create_audience(club=club, name="Spare", conditions=[])
    return Side(club=club, group=group, member=member, audience=audience)


@pytest.fixture
def ours(club: Club) -> Side:
    return side(club, "ann@red.example", "4740000001")


@pytest.fixture
def theirs(other_club: Club) -> Side:
    return side(other_club, "bob@blue.example", "4740000002")


def snapshot(club: Club) -> tuple[Any, ...]:
    """Everything of a club a caller could change."""
    return (
        list(
            MembersGroup.objects.filter(club=club)
            .values_list("id", "name", "type", "description", "members_count", "audience_id")
            .order_by("id")
        ),
        list(
            Member.objects.filter(club=club)
            .values_list("id", "email", "msisdn", "properties", "sms_status")
            .order_by("id")
        ),
        list(
            Audience.objects.filter(club=club)
            .values_list("id", "name", "conditions")
            .order_by("id")
        ),
        list(Membership.objects.filter(club=club).values_list("group_id", "member_id")),
        MembershipEvent.objects.filter(club=club).count(),
    )


def test_lists_show_only_the_callers_club(api: APIClient, ours: Side, theirs: Side) -> None:
    groups = api.get("members_groups").json()["members_groups"]
    members = api.get("members").json()["members"]
    assert {g["id"] for g in groups} == set(
        MembersGroup.objects.filter(club=ours.club).values_list("id", flat=True)
    )
    assert theirs.group.pk not in {g["id"] for g in groups}
    assert [(m["id"], m["email"]) for m in members] == [(ours.member.pk, "ann@red.example")]
    audiences = {a["id"] for a in api.get("audiences").json()["audiences"]}
    assert theirs.audience.pk not in audiences
    assert theirs.group.audience_id not in audiences
    own_members = api.get(f"members_groups/{ours.group.pk}/members").json()["members"]
    assert [m["id"] for m in own_members] == [ours.member.pk]


def test_filters_never_reach_the_other_club(api: APIClient, ours: Side, theirs: Side) -> None:
    queries = [
        ("members_groups", f"ids[]={theirs.group.pk}"),
        ("members", f"ids[]={theirs.member.pk}"),
        ("members", "email=bob@blue.example"),
        ("members", "msisdn=4740000002"),
        ("members", "search=blue"),
        ("members", f"members_group_ids[]={theirs.group.pk}"),
    ]
    for path, query in queries:
        body = api.get(f"{path}?{query}").json()
        assert body[path] == [], query
        assert body["pagination_info"]["total_count"] == 0
    # Named beside one of ours, their group adds nothing and changes nothing.
    both = f"members_group_ids[]={theirs.group.pk}&members_group_ids[]={ours.group.pk}"
    for sort in ("", "&sort_by[]=email"):
        body = api.get(f"members?{both}{sort}").json()
        assert [m["id"] for m in body["members"]] == [ours.member.pk], sort


@pytest.mark.parametrize(
    ("method", "path", "payload"),
    [
        ("get", "members_groups/{group}", None),
        ("put", "members_groups/{group}", {"name": "Mine"}),
        ("patch", "members_groups/{group}", {"name": "Mine"}),
        ("delete", "members_groups/{group}", None),
        ("get", "members_groups/{group}/members", None),
        ("get", "members_groups/{group}/events", None),
        ("get", "members_groups/{group}/stats", None),
        ("post", "members_groups/{group}/members", {"identifier_type": "id", "identifiers": [1]}),
        ("delete", "members_groups/{group}/members", {"identifier_type": "id", "identifiers": [1]}),
        ("get", "members/{member}", None),
        ("put", "members/{member}", {"email": "stolen@example.com"}),
        ("patch", "members/{member}", {"sms_status": "enabled"}),
        ("delete", "members/{member}", None),
        ("get", "members/{member}/members_groups", None),
        ("get", "audiences/{audience}", None),
        ("patch", "audiences/{audience}", {"name": "Mine"}),
        ("delete", "audiences/{audience}", None),
        ("delete", "audiences/{group_audience}", None),
    ],
)
def test_the_other_clubs_ids_are_404_and_unchanged(
    api: APIClient, ours: Side, theirs: Side, method: str, path: str, payload: Any
) -> None:
    ids = {
        "group": theirs.group.pk,
        "member": theirs.member.pk,
        "audience": theirs.audience.pk,
        "group_audience": theirs.group.audience_id,
    }
    before = snapshot(theirs.club)

    response = getattr(api, method)(path.format(**ids), payload)

    assert response.status_code == 404
    assert response.json() == {"error": "Not found"}
    assert snapshot(theirs.club) == before


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("get", "members_groups"),
        ("post", "members_groups"),
        ("get", "members_groups/{group}"),
        ("patch", "members_groups/{group}"),
        ("post", "members_groups/{group}/members"),
        ("get", "members"),
        ("delete", "members/{member}"),
        ("get", "audiences"),
        ("post", "audiences/preview"),
    ],
)
def test_a_token_is_refused_on_the_other_clubs_path(
    club: Club,
    theirs: Side,
    make_token: Callable[..., tuple[ApiToken, str]],
    client_for: Callable[..., APIClient],
    method: str,
    path: str,
) -> None:
    client = client_for(theirs.club.slug, make_token(club)[1])
    before = snapshot(theirs.club)

    response = getattr(client, method)(
        path.format(group=theirs.group.pk, member=theirs.member.pk), {"name": "Mine"}
    )

    assert response.status_code == 401
    assert response.json() == {"error": "Invalid token for this loyalty club."}
    assert snapshot(theirs.club) == before


@pytest.mark.parametrize(
    ("identifier_type", "identifiers"),
    [
        ("email", ["bob@blue.example", "BOB@blue.example"]),
        ("msisdn", ["4740000002", "+47 400 00 002"]),
        ("id", "member"),
    ],
)
@pytest.mark.parametrize("method", ["post", "delete"])
def test_bulk_calls_with_the_other_clubs_identifiers_find_nothing_and_write_nothing(
    api: APIClient,
    ours: Side,
    theirs: Side,
    method: str,
    identifier_type: str,
    identifiers: Any,
) -> None:
    sent = [theirs.member.pk] if identifiers == "member" else identifiers
    before = snapshot(ours.club), snapshot(theirs.club)

    response = getattr(api, method)(
        f"members_groups/{ours.group.pk}/members",
        {"identifier_type": identifier_type, "identifiers": sent},
    )

    assert response.status_code == 200
    body = response.json()
    assert body["not_found"] == sent[:1]
    assert body["invalid"] == []
    assert body.get("added", body.get("removed")) == 0
    assert body.get("already_members", body.get("not_members")) == 0
    assert (snapshot(ours.club), snapshot(theirs.club)) == before


def test_the_other_clubs_groups_and_audiences_cannot_be_referenced(
    api: APIClient, ours: Side, theirs: Side
) -> None:
    before = snapshot(ours.club), snapshot(theirs.club)

    by_audience = api.post("members_groups", {"name": "X", "audience_id": theirs.audience.pk})
    by_rule = api.post(
        "members_groups", {"name": "X", "audience_conditions": [in_groups(theirs.group.pk)]}
    )
    preview = api.post("audiences/preview", {"conditions": [in_groups(theirs.group.pk)]})

    assert by_audience.status_code == by_rule.status_code == 422
    assert by_audience.json()["details"] == {"audience_id": [{"error": "not_found", "options": {}}]}
    assert by_rule.json()["details"] == {
        "audience_conditions": [
            {"error": "unknown_members_group", "options": {"ids": [theirs.group.pk]}}
        ]
    }
    assert preview.status_code == 422
    assert preview.json()["details"] == {
        "conditions": {
            "0": {
                "value": [{"error": "unknown_members_group", "options": {"ids": [theirs.group.pk]}}]
            }
        }
    }
    assert (snapshot(ours.club), snapshot(theirs.club)) == before


def test_an_email_used_in_the_other_club_is_free_in_this_one(
    api: APIClient, ours: Side, theirs: Side
) -> None:
    response = api.post("members", {"email": "bob@blue.example", "msisdn": "4740000002"})

    assert response.status_code == 201
    assert Member.objects.get(pk=response.json()["id"]).club_id == ours.club.pk
    theirs.member.refresh_from_db()
    assert theirs.member.club_id == theirs.club.pk
