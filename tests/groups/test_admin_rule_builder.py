"""The rule builder's admin endpoints and forms: catalogue, preview, scoping, permissions."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse
from pytest_django import DjangoAssertNumQueries

from audiences import catalogue
from audiences import services as audience_services
from groups import services
from groups.models import ALL_MEMBERS_KEY, MembersGroup
from loyalty.models import Club
from tests.factories import GroupFactory, MemberFactory
from tests.helpers import cond, in_groups

pytestmark = pytest.mark.django_db


def catalogue_url() -> str:
    return reverse("admin:groups_membersgroup_rule_catalogue")


def preview_url() -> str:
    return reverse("admin:groups_membersgroup_preview")


def read_catalogue(client: Client, club: Club, **params: Any) -> dict[str, Any]:
    response = client.get(catalogue_url(), {"club": club.pk, **params})
    assert response.status_code == 200, response.content
    body: dict[str, Any] = response.json()
    return body


def fields_of(body: dict[str, Any]) -> dict[str, tuple[str, str]]:
    return {field["field"]: (field["type"], field["kind"]) for field in body["fields"]}


def builder_config(page: str) -> dict[str, Any]:
    """The builder's configuration, as the widget writes it into the page."""
    start = page.index('class="rule-builder" data-config="') + len(
        'class="rule-builder" data-config="'
    )
    raw = page[start : page.index('"', start)]
    config: dict[str, Any] = json.loads(raw.replace("&quot;", '"').replace("&#x27;", "'"))
    return config


def test_the_catalogue_lists_the_property_keys_and_consents_found_in_the_clubs_members(
    admin_client: Client, club: Club
) -> None:
    MemberFactory(
        club=club,
        properties={
            "first_name": "Ola",
            "points": 120,
            "vip": True,
            "joined_on": "2021-05-04",
            "city": "Oslo",
            "sizes": [38, 40],
            "tags": ["a", 1],
            "address": {"street": "x"},
            "not a key": "x",
        },
        consents={"news": {"status": True, "updated_at": "2024-01-01T00:00:00Z"}},
    )
    MemberFactory(club=club, properties={"points": 7.5, "city": "2020-01-01"})

    body = read_catalogue(admin_client, club)

    assert fields_of(body) == {
        "points": ("number", "property"),
        "vip": ("boolean", "property"),
        "joined_on": ("date", "property"),
        # One value is a date, one is not: a text property.
        "city": ("string", "property"),
        "sizes": ("array", "property"),
        "tags": ("array", "property"),
        "consents.news": ("boolean", "consent"),
    }
    arrays = {
        field["field"]: field["items"] for field in body["fields"] if field["type"] == "array"
    }
    assert arrays == {"sizes": "number", "tags": "string"}
    consent = next(field for field in body["fields"] if field["kind"] == "consent")
    assert consent["condition_group"] == "consents"
    assert body["sampled"] == 2
    assert body["sample_limit"] == catalogue.SAMPLE_MEMBERS


def test_the_catalogue_reads_a_bounded_sample_of_the_newest_members_in_one_query(
    admin_client: Client,
    club: Club,
    monkeypatch: pytest.MonkeyPatch,
    django_assert_max_num_queries: Callable[..., DjangoAssertNumQueries],
) -> None:
    monkeypatch.setattr(catalogue, "SAMPLE_MEMBERS", 2)
    MemberFactory(club=club, properties={"old_key": 1})
    MemberFactory(club=club, properties={"new_key": 1})
    MemberFactory(club=club, properties={"newer_key": "x"})

    body = read_catalogue(admin_client, club)

    assert set(fields_of(body)) == {"new_key", "newer_key"}
    assert body["sampled"] == 2
    for n in range(5):
        MemberFactory(club=club, properties={f"key_{n}": n})
    # Session, user, club, sample, groups, dependency graph: the same for any club size.
    with django_assert_max_num_queries(6):
        read_catalogue(admin_client, club)


def test_the_catalogue_offers_the_clubs_groups_by_name_but_never_another_clubs(
    admin_client: Client, club: Club, other_club: Club
) -> None:
    gold = GroupFactory(club=club, name="Gold")
    GroupFactory(club=other_club, name="Theirs")

    body = read_catalogue(admin_client, club)

    names = [group["name"] for group in body["groups"]]
    assert names == ["All members", "Gold"]
    assert {"id": gold.pk, "name": "Gold"} in body["groups"]


def test_the_group_picker_leaves_out_the_group_itself_and_the_groups_that_would_make_a_cycle(
    admin_client: Client, club: Club
) -> None:
    base = GroupFactory(club=club, name="Base")
    middle = services.create_group(
        club=club, name="Middle", audience_conditions=[in_groups(base.pk)]
    )
    top = services.create_group(club=club, name="Top", audience_conditions=[in_groups(middle.pk)])
    aside = services.create_group(
        club=club, name="Aside", audience_conditions=[cond("string", "email", "present")]
    )

    for_middle = read_catalogue(admin_client, club, group=middle.pk)
    for_new_group = read_catalogue(admin_client, club)

    assert {group["name"] for group in for_middle["groups"]} == {"All members", "Base", "Aside"}
    assert {group["id"] for group in for_new_group["groups"]} >= {
        base.pk,
        middle.pk,
        top.pk,
        aside.pk,
    }


def test_the_group_picker_of_an_audience_leaves_out_its_followers_and_their_dependants(
    admin_client: Client, club: Club
) -> None:
    audience = audience_services.create_audience(
        club=club, name="Gold", conditions=[cond("string", "email", "match", "gold")]
    )
    follower = services.create_group(club=club, name="Follower", audience_id=audience.pk)
    services.create_group(club=club, name="Reader", audience_conditions=[in_groups(follower.pk)])
    GroupFactory(club=club, name="Free")

    body = read_catalogue(admin_client, club, audience=audience.pk)

    assert {group["name"] for group in body["groups"]} == {"All members", "Free"}


def test_staff_cannot_read_another_clubs_catalogue(
    staff_client_with: Callable[..., Client], other_club: Club
) -> None:
    MemberFactory(club=other_club, properties={"secret_key": 1})
    GroupFactory(club=other_club, name="Their group")
    client = staff_client_with("groups.view_membersgroup")

    response = client.get(catalogue_url(), {"club": other_club.pk})

    assert response.status_code == 400
    assert response.json() == {"error": "Choose one of your clubs first."}
    assert b"secret_key" not in response.content
    assert b"Their group" not in response.content


def test_staff_of_audiences_only_may_read_the_catalogue_and_preview(
    staff_client_with: Callable[..., Client], club: Club
) -> None:
    client = staff_client_with("audiences.change_audience")
    MemberFactory(club=club)

    catalogue_response = client.get(catalogue_url(), {"club": club.pk})
    preview_response = client.post(preview_url(), {"club": club.pk, "conditions": "[]"})

    assert catalogue_response.status_code == 200
    assert preview_response.json() == {"count": 1, "words": "every member of the club"}


def test_staff_without_group_or_audience_permissions_are_refused(
    staff_client_with: Callable[..., Client], club: Club
) -> None:
    client = staff_client_with("members.view_member")

    catalogue_response = client.get(catalogue_url(), {"club": club.pk})
    preview_response = client.post(preview_url(), {"club": club.pk, "conditions": "[]"})

    assert catalogue_response.status_code == 403
    assert preview_response.status_code == 403
    assert "count" not in preview_response.json()


def test_the_builder_endpoints_need_a_staff_login(client: Client, club: Club) -> None:
    response = client.get(catalogue_url(), {"club": club.pk})
    assert response.status_code == 302
    assert "/admin/login/" in response["Location"]


@pytest.mark.parametrize(
    "club_param", ["", "abc", "0", "-1", "²", "99999999999999999999", "1.5", "\x00"]
)
def test_a_catalogue_request_naming_no_club_of_the_users_is_refused(
    admin_client: Client, club: Club, club_param: str
) -> None:
    response = admin_client.get(catalogue_url(), {"club": club_param})
    assert response.status_code == 400
    assert response.json() == {"error": "Choose one of your clubs first."}


def test_a_malformed_group_or_audience_in_the_catalogue_request_is_ignored(
    admin_client: Client, club: Club
) -> None:
    body = read_catalogue(admin_client, club, group="x", audience="1e9")
    assert [group["name"] for group in body["groups"]] == ["All members"]


def test_the_catalogue_is_read_with_get_and_the_preview_sent_with_post(
    admin_client: Client, club: Club
) -> None:
    assert admin_client.post(catalogue_url(), {"club": club.pk}).status_code == 405
    assert admin_client.get(preview_url(), {"club": club.pk}).status_code == 405


def test_the_preview_says_the_rule_in_words_naming_its_groups(
    admin_client: Client, club: Club
) -> None:
    gold = GroupFactory(club=club, name="Gold")
    rule = [
        {"operator": "or", "conditions": [in_groups(gold.pk), cond("number", "points", "gt", 5)]},
        cond("string", "first_name", "in", ["Ola", "Kari"]),
    ]

    response = admin_client.post(preview_url(), {"club": club.pk, "conditions": json.dumps(rule)})

    assert response.json() == {
        "count": 0,
        "words": "(member of group 'Gold' or points is greater than 5) "
        "and first name is one of 'Ola', 'Kari'",
    }


def test_the_preview_points_each_error_at_its_place_in_a_nested_rule(
    admin_client: Client, club: Club
) -> None:
    rule = [
        cond("string", "email", "present"),
        {
            "operator": "not",
            "conditions": [
                cond("number", "points", "between", [10, 5]),
                cond("array", "members_group_ids", "any", [1, "two"]),
            ],
        },
    ]

    response = admin_client.post(preview_url(), {"club": club.pk, "conditions": json.dumps(rule)})

    assert response.status_code == 422
    assert response.json()["errors"] == [
        {
            "path": ["1", "conditions", "0", "value"],
            "message": "The first value is greater than the second.",
        },
        {"path": ["1", "conditions", "1", "value", "1"], "message": "Not an integer."},
    ]


def test_a_rule_that_is_not_a_list_is_an_error_of_the_whole_rule(
    admin_client: Client, club: Club
) -> None:
    response = admin_client.post(preview_url(), {"club": club.pk, "conditions": '"text"'})
    assert response.status_code == 422
    assert response.json()["errors"] == [{"path": [], "message": "Enter a JSON array."}]


def test_the_preview_of_an_audience_counts_without_an_impact(
    admin_client: Client, club: Club
) -> None:
    MemberFactory(club=club, email="ann@gold.example")
    audience = audience_services.create_audience(club=club, name="Gold", conditions=[])
    conditions = json.dumps([cond("string", "email", "match", "gold")])

    response = admin_client.post(
        preview_url(), {"club": club.pk, "audience": audience.pk, "conditions": conditions}
    )

    assert response.json() == {"count": 1, "words": "email contains 'gold'"}


def test_the_impact_of_another_clubs_group_is_refused(
    admin_client: Client, club: Club, other_club: Club
) -> None:
    theirs = GroupFactory(club=other_club, name="Theirs")
    response = admin_client.post(
        preview_url(), {"club": club.pk, "group": theirs.pk, "conditions": "[]"}
    )
    assert response.status_code == 422
    assert "count" not in response.json()


def test_the_group_forms_edit_conditions_with_the_builder(admin_client: Client, club: Club) -> None:
    group = services.create_group(
        club=club, name="Tier", audience_conditions=[cond("string", "email", "match", "gold")]
    )

    added = builder_config(
        admin_client.get(reverse("admin:groups_membersgroup_add")).content.decode()
    )
    changed = builder_config(
        admin_client.get(
            reverse("admin:groups_membersgroup_change", args=[group.pk])
        ).content.decode()
    )

    assert added["club"] is None
    assert added["target"] == {"param": "group", "id": None}
    assert added["empty"] == "", "a new group without conditions is manual"
    assert changed["club"] == club.pk
    assert changed["target"] == {"param": "group", "id": group.pk}
    assert changed["empty"] == "[]"
    assert changed["catalogue"] == catalogue_url()
    assert changed["preview"] == preview_url()
    assert "members_group_ids" in {field["field"] for field in changed["grammar"]["fields"]}
    assert changed["grammar"]["operators"]["date"][-1] == "anniversary_within_days"


def test_manual_and_system_groups_have_no_builder(admin_client: Client, club: Club) -> None:
    manual = GroupFactory(club=club, name="Manual")
    system = MembersGroup.objects.get(club=club, system_key=ALL_MEMBERS_KEY)
    for group in (manual, system):
        page = admin_client.get(reverse("admin:groups_membersgroup_change", args=[group.pk]))
        assert page.status_code == 200
        assert b"rule-builder" not in page.content


def test_the_audience_forms_edit_conditions_with_the_builder(
    admin_client: Client, club: Club
) -> None:
    audience = audience_services.create_audience(club=club, name="Gold", conditions=[])
    own = GroupFactory(club=club, name="Manual").audience

    added = builder_config(
        admin_client.get(reverse("admin:audiences_audience_add")).content.decode()
    )
    changed = builder_config(
        admin_client.get(
            reverse("admin:audiences_audience_change", args=[audience.pk])
        ).content.decode()
    )
    read_only = admin_client.get(reverse("admin:audiences_audience_change", args=[own.pk]))

    assert added["target"] == {"param": "audience", "id": None}
    assert changed["target"] == {"param": "audience", "id": audience.pk}
    # The groups admin's endpoints, which it passes in: audiences know nothing of groups.
    assert (added["catalogue"], added["preview"]) == (catalogue_url(), preview_url())
    assert changed["club"] == club.pk
    assert added["empty"] == changed["empty"] == "[]"
    assert b"rule-builder" not in read_only.content


def test_the_form_stores_what_the_builder_writes_as_the_api_would(
    admin_client: Client, club: Club, make_client: Callable[..., Any]
) -> None:
    rule = [
        {
            "condition_group": "member_properties",
            "type": "string",
            "field": "first_name",
            "operator": "eq",
            "value": "Ola",
        },
        {
            "operator": "not",
            "conditions": [
                {
                    "condition_group": "consents",
                    "type": "boolean",
                    "field": "consents.news",
                    "operator": "eq",
                    "value": False,
                }
            ],
        },
    ]
    response = admin_client.post(
        reverse("admin:groups_membersgroup_add"),
        {
            "club": club.pk,
            "name": "From the builder",
            "type": "",
            "description": "",
            "audience_conditions": json.dumps(rule, indent=2),
        },
    )
    assert response.status_code == 302
    api = make_client(club).post(
        "members_groups", {"name": "From the API", "audience_conditions": rule}, format="json"
    )
    assert api.status_code == 201

    stored = {
        group.name: group.audience.conditions
        for group in MembersGroup.objects.filter(club=club, automatic=True)
    }
    assert stored["From the builder"] == stored["From the API"] == rule


def test_a_preview_asked_not_to_count_checks_and_words_the_rule_only(
    admin_client: Client, club: Club, django_assert_max_num_queries: Callable[..., Any]
) -> None:
    gold = GroupFactory(club=club, name="Gold")
    MemberFactory(club=club)
    good = json.dumps([in_groups(gold.pk)])
    bad = json.dumps([cond("number", "points", "gt", "x")])

    # Session, user, club, the checks saving runs (the named groups are the club's; the
    # group edited, to look for a cycle), the named groups' names: no count.
    with django_assert_max_num_queries(6):
        checked = admin_client.post(
            preview_url(), {"club": club.pk, "group": gold.pk, "count": "0", "conditions": good}
        )
    refused = admin_client.post(preview_url(), {"club": club.pk, "count": "0", "conditions": bad})

    assert checked.json() == {"words": "member of group 'Gold'"}
    assert refused.status_code == 422
    assert refused.json()["errors"] == [{"path": ["0", "value"], "message": "Not a number."}]


def test_a_single_condition_object_is_taken_as_the_api_takes_it(
    admin_client: Client, club: Club, make_client: Callable[..., Any]
) -> None:
    MemberFactory(club=club, email="ann@gold.example")
    single = {
        "operator": "or",
        "conditions": cond("string", "email", "match", "gold"),
    }
    response = admin_client.post(
        reverse("admin:groups_membersgroup_add"),
        {
            "club": club.pk,
            "name": "From the form",
            "type": "",
            "description": "",
            "audience_conditions": json.dumps(single),
        },
    )
    assert response.status_code == 302
    api = make_client(club).post(
        "members_groups", {"name": "From the API", "audience_conditions": single}, format="json"
    )
    assert api.status_code == 201
    counted = admin_client.post(preview_url(), {"club": club.pk, "conditions": json.dumps(single)})

    stored = {
        group.name: group.audience.conditions
        for group in MembersGroup.objects.filter(club=club, automatic=True)
    }
    assert (
        stored["From the form"]
        == stored["From the API"]
        == [{"operator": "or", "conditions": [cond("string", "email", "match", "gold")]}]
    )
    assert counted.json() == {"count": 1, "words": "email contains 'gold'"}


def test_the_preview_refuses_missing_groups_at_their_row_counting_or_not(
    admin_client: Client, club: Club, other_club: Club
) -> None:
    foreign = GroupFactory(club=other_club, name="Theirs")
    rule = json.dumps(
        [
            cond("string", "email", "present"),
            {"operator": "not", "conditions": [in_groups(foreign.pk)]},
        ]
    )

    answers = [
        admin_client.post(preview_url(), {"club": club.pk, "conditions": rule, **count})
        for count in ({}, {"count": "0"})
    ]

    for answer in answers:
        assert answer.status_code == 422
        assert answer.json()["errors"] == [
            {
                "path": ["1", "conditions", "0", "value"],
                "message": f"No such members group in this club. (ids: {foreign.pk})",
            }
        ]


def test_the_preview_refuses_a_cycle_at_its_row_for_a_group_and_for_an_audiences_followers(
    admin_client: Client, club: Club
) -> None:
    audience = audience_services.create_audience(
        club=club, name="Gold", conditions=[cond("string", "email", "match", "gold")]
    )
    follower = services.create_group(club=club, name="Follower", audience_id=audience.pk)
    reader = services.create_group(
        club=club, name="Reader", audience_conditions=[in_groups(follower.pk)]
    )
    free = GroupFactory(club=club, name="Free")
    rule = json.dumps(
        [in_groups(free.pk), cond("string", "email", "present"), in_groups(reader.pk)]
    )

    for_group = admin_client.post(
        preview_url(), {"club": club.pk, "group": follower.pk, "conditions": rule}
    )
    for_audience = admin_client.post(
        preview_url(), {"club": club.pk, "audience": audience.pk, "count": "0", "conditions": rule}
    )
    for_new_group = admin_client.post(preview_url(), {"club": club.pk, "conditions": rule})

    ids = f"{follower.pk}, {reader.pk}, {follower.pk}"
    path = f"Follower ({follower.pk}) -> Reader ({reader.pk}) -> Follower ({follower.pk})"
    cycle = [
        {
            "path": ["2", "value"],
            "message": "These conditions would make a cycle of groups. "
            f"(members group ids: {ids}; path: {path})",
        }
    ]
    assert for_group.status_code == for_audience.status_code == 422
    assert for_group.json()["errors"] == for_audience.json()["errors"] == cycle
    assert for_new_group.json()["count"] == 0
