"""GET members_groups/{id}/events: a group's joins and leaves, newest first, filtered."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from groups import services
from groups.models import MembersGroup, MembershipEvent
from loyalty import permits
from loyalty.models import Club
from tests.api_fixtures import ClubClient
from tests.factories import MemberFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def history(club: Club) -> tuple[MembersGroup, list[int]]:
    """Ann and Bob join by API, Ann leaves by admin, Cid joins by import."""
    ann, bob, cid = (MemberFactory(club=club, email=f"{n}@example.com") for n in "abc")
    group = services.create_group(club=club, name="Red")
    services.add_member_ids(group=group, member_ids=[ann.pk, bob.pk], source="api", actor="crm")
    services.remove_member_ids(group=group, member_ids=[ann.pk], source="admin", actor="carol")
    services.add_member_ids(group=group, member_ids=[cid.pk], source="import")
    return group, [ann.pk, bob.pk, cid.pk]


def test_the_events_come_newest_first_with_who_what_and_through_which_door(
    api: ClubClient, history: tuple[MembersGroup, list[int]]
) -> None:
    group, (ann, bob, cid) = history

    body = api.get(f"members_groups/{group.pk}/events").json()

    assert [(e["member_id"], e["kind"], e["source"]) for e in body["events"]] == [
        (cid, "joined", "import"),
        (ann, "left", "admin"),
        (bob, "joined", "api"),
        (ann, "joined", "api"),
    ]
    assert body["events"][1]["actor"] == "carol"
    assert {e["members_group_id"] for e in body["events"]} == {group.pk}
    assert body["pagination_info"]["total_count"] == 4


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({"kind": "left"}, [("left", "admin")]),
        ({"source": "api"}, [("joined", "api"), ("joined", "api")]),
        ({"per_page": 1, "page_no": 4}, [("joined", "api")]),
    ],
)
def test_filters_and_pages(
    api: ClubClient,
    history: tuple[MembersGroup, list[int]],
    query: dict[str, Any],
    expected: list[tuple[str, str]],
) -> None:
    group, _ = history

    body = api.get(f"members_groups/{group.pk}/events", query).json()

    assert [(e["kind"], e["source"]) for e in body["events"]] == expected


def test_member_and_time_window_filters(
    api: ClubClient, history: tuple[MembersGroup, list[int]]
) -> None:
    group, (ann, _bob, _cid) = history
    MembershipEvent.objects.filter(group_id=group.pk, member_id=ann, kind="left").update(
        created_at=timezone.now() - timedelta(days=3)
    )
    path = f"members_groups/{group.pk}/events"

    ann_events = api.get(path, {"member_id": ann}).json()["events"]
    old = api.get(path, {"until": (timezone.now() - timedelta(days=1)).isoformat()}).json()
    recent = api.get(path, {"since": (timezone.now() - timedelta(days=1)).isoformat()}).json()

    assert [e["kind"] for e in ann_events] == ["joined", "left"]
    assert [e["kind"] for e in old["events"]] == ["left"]
    assert len(recent["events"]) == 3


@pytest.mark.parametrize(
    ("query", "field", "code"),
    [
        ({"kind": "maybe"}, "kind", "invalid_choice"),
        ({"source": "fax"}, "source", "invalid_choice"),
        ({"since": "yesterday"}, "since", "invalid_datetime"),
        ({"member_id": "x"}, "member_id", None),
    ],
)
def test_bad_filters_are_422_in_the_error_format(
    api: ClubClient,
    history: tuple[MembersGroup, list[int]],
    query: dict[str, str],
    field: str,
    code: str | None,
) -> None:
    group, _ = history

    response = api.get(f"members_groups/{group.pk}/events", query)

    assert response.status_code == 422
    details = response.json()["details"]
    assert field in details
    if code is not None:
        assert details[field][0]["error"] == code


def test_the_events_permit_is_needed_and_other_clubs_groups_are_404(
    club: Club,
    other_club: Club,
    history: tuple[MembersGroup, list[int]],
    make_client: Callable[..., ClubClient],
) -> None:
    group, _ = history
    without = [p for p in permits.ALL_PERMITS if p != permits.GROUPS_EVENTS]
    hidden = services.create_group(club=other_club, name="Blue")

    assert make_client(club, without).get(f"members_groups/{group.pk}/events").status_code == 403
    assert make_client(club).get(f"members_groups/{hidden.pk}/events").status_code == 404


def test_a_members_groups_say_when_and_how_it_joined_each(
    api: ClubClient, club: Club, history: tuple[MembersGroup, list[int]]
) -> None:
    group, (_ann, bob, _cid) = history
    rule = services.create_group(
        club=club,
        name="Everyone at example.com",
        audience_conditions=[
            {
                "condition_group": "member_properties",
                "type": "string",
                "field": "email",
                "operator": "match",
                "value": "@example.com",
            }
        ],
    )

    groups = api.get(f"members/{bob}/members_groups").json()["members_groups"]

    joined = {g["id"]: (g["joined_source"], g["joined_at"] is not None) for g in groups}
    assert joined[group.pk] == ("api", True)
    assert joined[rule.pk] == ("rule", True)
    assert len(groups) == 3  # and All members, joined by the system
    assert {g["joined_source"] for g in groups if g["system"]} == {"system"}
