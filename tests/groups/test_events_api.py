"""GET members_groups/{id}/events: a group's joins and leaves, newest first, filtered."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, timedelta
from itertools import pairwise
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


def test_the_members_at_a_moment_are_those_the_group_held_then(api: ClubClient, club: Club) -> None:
    """A scripted history, the membership recorded after each step, then asked back."""
    members = [MemberFactory(club=club, email=f"p{n}@example.com").pk for n in range(8)]
    group = services.create_group(club=club, name="Story")
    steps = [
        (services.add_member_ids, members[:5]),
        (services.remove_member_ids, members[1:3]),
        (services.add_member_ids, [members[1], *members[5:8]]),
        (services.remove_member_ids, [members[0], members[7]]),
        (services.add_member_ids, [members[0]]),
    ]
    moments = []
    for change, ids in steps:
        change(group=group, member_ids=ids, source="api")
        held = set(group.memberships.values_list("member_id", flat=True))
        moments.append((timezone.now().isoformat(), held))

    for at, held in moments:
        body = api.get(f"members_groups/{group.pk}/members", {"at": at, "per_page": 3}).json()
        walked, after = [], 0
        while after is not None:
            page = api.get(
                f"members_groups/{group.pk}/members", {"at": at, "after_id": after, "per_page": 3}
            ).json()
            walked += [m["id"] for m in page["members"]]
            after = page["pagination_info"]["next_after_id"]

        assert body["pagination_info"]["total_count"] == len(held)
        assert [m["id"] for m in body["members"]] == sorted(held)[:3]
        assert walked == sorted(held)

    before = api.get(f"members_groups/{group.pk}/members", {"at": "2000-01-01T00:00:00Z"})
    assert before.json()["members"] == []
    bad = api.get(f"members_groups/{group.pk}/members", {"at": "soon"})
    assert bad.status_code == 422


def test_a_member_is_in_the_group_at_the_joined_at_its_groups_list_shows(
    api: ClubClient, club: Club
) -> None:
    ann = MemberFactory(club=club, email="ann@example.com")
    group = services.create_group(club=club, name="Red")
    api.post(
        f"members_groups/{group.pk}/members",
        {"identifier_type": "id", "identifiers": [ann.pk]},
    )
    groups = api.get(f"members/{ann.pk}/members_groups").json()["members_groups"]
    joined_at = next(g["joined_at"] for g in groups if g["id"] == group.pk)
    event = api.get(f"members_groups/{group.pk}/events").json()["events"][0]

    then = api.get(f"members_groups/{group.pk}/members", {"at": joined_at}).json()

    assert event["created_at"] == joined_at
    assert [m["id"] for m in then["members"]] == [ann.pk]


def test_events_sort_by_time_either_way_and_by_nothing_else(
    api: ClubClient, history: tuple[MembersGroup, list[int]]
) -> None:
    group = history[0]
    url = f"members_groups/{group.pk}/events"

    newest = [e["id"] for e in api.get(url).json()["events"]]
    oldest = [e["id"] for e in api.get(url, {"sort_by[]": "created_at"}).json()["events"]]
    desc = api.get(url, {"sort_by[]": "created_at", "sort_directions[]": "desc"}).json()
    unknown = api.get(url, {"sort_by[]": "member_id"})

    assert len(newest) == 4
    assert oldest == newest[::-1]
    assert [e["id"] for e in desc["events"]] == newest
    assert unknown.status_code == 422
    assert unknown.json()["details"] == {
        "sort_by": {"0": [{"error": "invalid_choice", "options": {"choices": ["created_at"]}}]}
    }


def test_a_destroyed_groups_history_stays_answerable(
    api: ClubClient, club: Club, other_club: Club
) -> None:
    ann, bob = (MemberFactory(club=club, email=f"{n}@example.com").pk for n in "ab")
    group = services.create_group(club=club, name="Gone")
    services.add_member_ids(group=group, member_ids=[ann, bob], source="api")
    before = timezone.now().isoformat()
    stranger = services.create_group(club=other_club, name="Theirs")
    services.add_member_ids(
        group=stranger, member_ids=[MemberFactory(club=other_club).pk], source="api"
    )
    services.delete_group(group=stranger, source="api")
    assert api.delete(f"members_groups/{group.pk}").status_code == 204

    events = api.get(f"members_groups/{group.pk}/events").json()["events"]
    then = api.get(f"members_groups/{group.pk}/members", {"at": before}).json()
    stats = api.get(f"members_groups/{group.pk}/stats")

    assert sorted((e["kind"], e["member_id"]) for e in events) == [
        ("joined", ann), ("joined", bob), ("left", ann), ("left", bob)
    ]  # fmt: skip
    assert [m["id"] for m in then["members"]] == [ann, bob]
    assert then["pagination_info"]["total_count"] == 2
    assert stats.status_code == 200
    assert stats.json()["stats"][-1]["size_at_end"] == 0
    assert api.get(f"members_groups/{group.pk}/members").status_code == 404
    assert api.get(f"members_groups/{group.pk}").status_code == 404
    for url in (f"members_groups/{stranger.pk}/events", f"members_groups/{group.pk + 999}/events"):
        assert api.get(url).status_code == 404


def test_a_nul_in_a_group_members_filter_is_422(api: ClubClient, club: Club) -> None:
    group = services.create_group(club=club, name="Red")

    response = api.get(f"members_groups/{group.pk}/members", {"search": "a\x00"})

    assert response.status_code == 422
    assert response.json()["details"] == {
        "search": [{"error": "null_characters_not_allowed", "options": {}}]
    }


def test_the_stats_add_up_per_day_and_per_week(api: ClubClient, club: Club) -> None:
    members = [MemberFactory(club=club, email=f"s{n}@example.com").pk for n in range(6)]
    group = services.create_group(club=club, name="Stats")
    services.add_member_ids(group=group, member_ids=members[:4], source="api")
    services.remove_member_ids(group=group, member_ids=members[:1], source="api")
    services.add_member_ids(group=group, member_ids=members[4:], source="api")
    now = timezone.now()
    # Spread the history over ten days: the first joins 9 days ago, the leave 5 days ago.
    events = MembershipEvent.objects.filter(group_id=group.pk)
    events.filter(member_id__in=members[:4], kind="joined").update(
        created_at=now - timedelta(days=9)
    )
    events.filter(kind="left").update(created_at=now - timedelta(days=5))
    path = f"members_groups/{group.pk}/stats"

    daily = api.get(path, {"since": (now - timedelta(days=12)).date().isoformat()}).json()
    weekly = api.get(path, {"interval": "week", "since": (now - timedelta(days=20)).date()})

    group.refresh_from_db()
    for body in (daily, weekly.json()):
        stats = body["stats"]
        assert stats[0]["size_at_start"] == 0
        assert stats[-1]["size_at_end"] == group.members_count == 5
        for interval in stats:
            expected = interval["size_at_start"] + interval["joins"] - interval["leaves"]
            assert interval["size_at_end"] == expected
        for earlier, later in pairwise(stats):
            assert later["size_at_start"] == earlier["size_at_end"]
        assert sum(i["joins"] for i in stats) == 6
        assert sum(i["leaves"] for i in stats) == 1
    assert len(daily["stats"]) == 13
    assert [i["joins"] for i in daily["stats"] if i["joins"]] == [4, 2]
    assert all(date.fromisoformat(i["start"]).weekday() == 0 for i in weekly.json()["stats"])


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({"interval": "month"}, "interval"),
        ({"since": "2026-13-01"}, "since"),
        ({"since": "2026-02-01", "until": "2026-01-01"}, "since"),
        ({"since": "1990-01-01", "until": "2026-01-01"}, "since"),
    ],
)
def test_bad_stats_parameters_are_422(
    api: ClubClient, history: tuple[MembersGroup, list[int]], query: dict[str, str], field: str
) -> None:
    group, _ = history

    response = api.get(f"members_groups/{group.pk}/stats", query)

    assert response.status_code == 422
    assert field in response.json()["details"]
