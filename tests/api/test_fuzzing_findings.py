"""What the schema fuzzing found, pinned down: each was a 500, an HTML page or a silent yes."""

from __future__ import annotations

from typing import Any

import pytest

from loyalty.models import Club
from tests.api_fixtures import ClubClient
from tests.factories import GroupFactory

pytestmark = pytest.mark.django_db

NOT_FOUND = {"error": "Not found"}


@pytest.mark.parametrize("method", ["post", "put", "patch", "delete"])
def test_an_unsafe_method_on_an_unknown_path_is_the_json_404(api: ClubClient, method: str) -> None:
    response = getattr(api, method)("members_groups/null,null/members", {}, format="json")

    assert (response.status_code, response.json()) == (404, NOT_FOUND)


@pytest.mark.parametrize(
    "query", ["search=a%00b", "name=%00", "properties[first_name]=%00", "ids%00[]=1"]
)
@pytest.mark.parametrize("path", ["members", "members_groups", "audiences"])
def test_a_nul_character_in_a_list_query_is_refused(api: ClubClient, path: str, query: str) -> None:
    response = api.get(f"{path}?{query}")

    assert response.status_code == 422
    assert next(iter(response.json()["details"].values())) == [
        {"error": "null_characters_not_allowed", "options": {}}
    ]


NUL = [{"error": "null_characters_not_allowed", "options": {}}]


@pytest.mark.parametrize(
    ("path", "payload", "details"),
    [
        ("members", {"email": "a@b.example", "properties": {"k": "a\x00b"}}, {"properties": NUL}),
        ("members", {"email": "a@b.example", "consents": {"\x00": True}}, {"consents": NUL}),
        # In conditions the error points at the condition and its key (SPEC section 4).
        ("audiences", {"conditions": [{"value": "\x00"}]}, {"conditions": {"0": {"value": NUL}}}),
    ],
)
def test_a_nul_character_in_a_json_value_is_refused(
    api: ClubClient, path: str, payload: dict[str, Any], details: dict[str, Any]
) -> None:
    response = api.post(path, payload, format="json")

    assert response.status_code == 422
    assert response.json()["details"] == details


@pytest.mark.parametrize(
    ("path", "payload", "field"),
    [
        ("audiences", {"name": 0}, "name"),
        ("members_groups", {"name": "Red", "system": "false"}, "system"),
        ("members_groups", {"audience_id": "1"}, "audience_id"),
        ("members", {"email": 42}, "email"),
        ("members", {"email": "a@b.example", "subunit_ids": ["1"]}, "subunit_ids"),
        ("audiences/preview", {"conditions": [], "members_group_id": 1.5}, "members_group_id"),
    ],
)
def test_a_value_of_another_json_type_is_refused(
    api: ClubClient, path: str, payload: dict[str, Any], field: str
) -> None:
    response = api.post(path, payload, format="json")

    assert response.status_code == 422
    assert field in response.json()["details"]


def test_an_imported_row_of_the_wrong_json_types_refuses_the_import(api: ClubClient) -> None:
    rows = [
        {"email": "fine@example.com"},
        {"email": 7, "id": -9223372036854775809},
        {"email": "x@example.com", "extra": "a\x00b"},
    ]
    response = api.post("members/imports", {"operation": "update", "members": rows}, format="json")

    assert response.status_code == 422
    assert response.json()["details"] == {
        "members": {
            "1": {
                "email": [{"error": "invalid", "options": {}}],
                "id": [{"error": "min_value", "options": {"count": 1}}],
            },
            "2": [{"error": "null_characters_not_allowed", "options": {}}],
        }
    }


def test_an_imported_row_with_a_bad_value_is_still_only_rejected(api: ClubClient) -> None:
    response = api.post(
        "members/imports",
        {"operation": "create", "members": [{"email": "not an email"}, {"unknown": 1}]},
        format="json",
    )

    assert response.status_code == 202


@pytest.mark.parametrize(
    "param", ["properties", "properties[]", "properties[a][b]", "properties[a\x1fb]"]
)
def test_a_properties_filter_without_a_usable_key_is_refused(api: ClubClient, param: str) -> None:
    response = api.get("members", {param: "x"})

    assert response.status_code == 422
    assert response.json()["details"] == {
        "properties": [{"error": "invalid", "options": {"parameter": param}}]
    }


@pytest.mark.parametrize("path", ["members", "members_groups", "audiences"])
def test_a_page_number_whose_offset_would_overflow_is_refused(api: ClubClient, path: str) -> None:
    response = api.get(path, {"page_no": "4336202237825377792"})

    assert response.status_code == 422
    assert response.json()["details"]["page_no"][0]["error"] == "max_value"


def test_a_post_to_an_unknown_path_outside_any_club_is_the_json_404(api: Any) -> None:
    response = api.post("/v3/", {"name": "x"}, format="json")

    assert response.status_code == 404
    assert set(response.json()) == {"error"}


@pytest.mark.parametrize(
    ("since", "status"),
    [
        ("0897-11-16T06:23:54.0-19:12", 200),
        ("2026-01-01T00:00:00+23:59", 200),
        ("0001-01-01T00:10:00+05:00", 422),
    ],
)
def test_an_offset_postgresql_would_refuse_is_read_in_utc(
    api: ClubClient, club: Club, since: str, status: int
) -> None:
    group = GroupFactory(club=club)

    response = api.get(f"members_groups/{group.pk}/events", {"since": since})

    assert response.status_code == status


@pytest.mark.parametrize("path", ["audiences", "members_groups"])
def test_a_name_over_its_maximum_length_is_refused_even_when_trimming_would_shorten_it(
    api: ClubClient, path: str
) -> None:
    # "\x1f" is whitespace to str.strip(): trimmed first, the name fitted.
    response = api.post(path, {"name": "\x1f" + "a" * 200}, format="json")

    assert response.status_code == 422
    assert response.json()["details"] == {
        "name": [{"error": "max_length", "options": {"count": 200}}]
    }
