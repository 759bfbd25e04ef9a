"""Hostile requests get the API's error format, never a 500: deep nesting, empty bodies,
too many query parameters, a disallowed Host."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client
from rest_framework.test import APIClient

from groups.models import MembersGroup, Membership
from loyalty.api import fields
from loyalty.api.views import MAX_JSON_DEPTH
from loyalty.models import Club
from members.models import Member
from tests.factories import GroupFactory, MemberFactory

pytestmark = pytest.mark.django_db

TOO_DEEP = f"The body is nested too deeply: at most {MAX_JSON_DEPTH} levels of objects and arrays."
EMPTY = "The body is empty: it must be a JSON object."
JSON = "application/json"


def member_body(email: str, levels: int) -> str:
    """A member whose properties nest ``levels`` objects deep: {"a": {"a": ... {}}}.

    Written out, as json.dumps itself recurses.
    """
    properties = '{"a": ' * (levels - 1) + "{}" + "}" * (levels - 1)
    return f'{{"email": "{email}", "properties": {properties}}}'


def or_nodes(count: int) -> dict[str, Any]:
    """``count`` "or" nodes, each inside the previous one, around one condition."""
    node: dict[str, Any] = {
        "condition_group": "member_properties",
        "type": "string",
        "field": "email",
        "operator": "eq",
        "value": "ann@example.com",
    }
    for _ in range(count):
        node = {"operator": "or", "conditions": [node]}
    return node


# Nesting ---------------------------------------------------------------------------------------


def test_a_body_nested_up_to_the_limit_is_taken_and_one_level_more_is_400(api: APIClient) -> None:
    # The body is level 1 and "properties" level 2: its value may nest MAX_JSON_DEPTH - 1 deep.
    at_limit = api.generic("POST", "members", member_body("ann@example.com", 63), JSON)
    over = api.generic("POST", "members", member_body("bob@example.com", 64), JSON)

    assert at_limit.status_code == 201
    assert over.status_code == 400
    assert over.json() == {"error": TOO_DEEP}
    assert not Member.objects.filter(email="bob@example.com").exists()


@pytest.mark.parametrize("levels", [350, 2_000])
def test_deeply_nested_member_properties_are_400_not_500(api: APIClient, levels: int) -> None:
    response = api.generic("POST", "members", member_body("ann@example.com", levels), JSON)

    assert response.status_code == 400
    assert response.json() == {"error": TOO_DEEP}
    assert not Member.objects.exists()


def test_deeply_nested_conditions_are_400_and_within_the_limit_still_422_too_deep(
    api: APIClient,
) -> None:
    deep = api.post("audiences/preview", {"conditions": [or_nodes(200)]})
    # {"conditions": [node]}: 2 levels, 2 per node, 1 for the condition: 30 nodes make 63.
    too_deep_for_the_grammar = api.post("audiences/preview", {"conditions": [or_nodes(30)]})

    assert deep.status_code == 400
    assert deep.json() == {"error": TOO_DEEP}
    assert too_deep_for_the_grammar.status_code == 422
    assert "too_deep" in str(too_deep_for_the_grammar.json()["details"])


def test_a_hundred_thousand_open_brackets_are_400_not_500(api: APIClient) -> None:
    body = "[" * 100_000 + "]" * 100_000

    response = api.generic("POST", "members_groups", body, JSON)

    assert response.status_code == 400
    assert response.json() == {"error": TOO_DEEP}
    assert not MembersGroup.objects.filter(system=False).exists()


def test_the_nul_check_walks_any_depth_without_recursing() -> None:
    # The import command's rows reach this check without the API's depth limit.
    deep: Any = ["\x00"]
    for _ in range(100_000):
        deep = {"a": [deep]}

    with pytest.raises(fields.serializers.ValidationError):
        fields.reject_unstorable(deep)


# Empty bodies ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "members_groups"),
        ("PUT", "members_groups/{group}"),
        ("PATCH", "members_groups/{group}"),
        ("POST", "members_groups/{group}/members"),
        ("DELETE", "members_groups/{group}/members"),
        ("POST", "members"),
        ("PUT", "members/{member}"),
        ("PATCH", "members/{member}"),
        ("POST", "members/imports"),
        ("POST", "audiences"),
        ("PATCH", "audiences/{audience}"),
        ("POST", "audiences/preview"),
    ],
)
def test_an_empty_json_body_is_400_on_every_write_that_takes_a_payload(
    api: APIClient, club: Club, method: str, path: str
) -> None:
    group = GroupFactory(club=club, name="Red")
    member = MemberFactory(club=club)
    audience = api.post("audiences", {"name": "Everyone", "conditions": []}).json()
    ids = {"group": group.pk, "member": member.pk, "audience": audience["id"]}

    response = api.generic(method, path.format(**ids), "", JSON)

    assert response.status_code == 400
    assert response.json() == {"error": EMPTY}
    group.refresh_from_db()
    assert group.name == "Red"
    assert MembersGroup.objects.filter(system=False).count() == 1


def test_an_empty_body_still_deletes_where_no_payload_is_expected(
    api: APIClient, club: Club
) -> None:
    group = GroupFactory(club=club)
    member = MemberFactory(club=club)
    bulk = api.generic("DELETE", f"members_groups/{group.pk}/members", "", JSON)

    responses = [
        api.generic("DELETE", f"members_groups/{group.pk}", "", JSON),
        api.delete(f"members/{member.pk}"),
    ]

    assert bulk.status_code == 400
    assert [response.status_code for response in responses] == [204, 204]
    assert not Membership.objects.exists()


def test_the_schema_says_every_payload_is_required(client: Client) -> None:
    schema = client.get("/v3/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()

    bodies = {
        f"{method.upper()} {path}": operation["requestBody"]
        for path, operations in schema["paths"].items()
        for method, operation in operations.items()
        if "requestBody" in operation
    }

    assert "PATCH /v3/{loyalty_club_slug}/members_groups/{id}" in bodies
    assert "DELETE /v3/{loyalty_club_slug}/members_groups/{id}/members" in bodies
    assert {name for name, body in bodies.items() if not body.get("required")} == set()


# Refusals outside DRF --------------------------------------------------------------------------


def test_more_query_parameters_than_django_parses_are_a_json_400(
    api: APIClient, settings: Any
) -> None:
    limit = settings.DATA_UPLOAD_MAX_NUMBER_FIELDS
    query = "&".join(f"ids[]={i}" for i in range(1, limit + 2))

    response = api.get(f"members_groups?{query}")

    assert response.status_code == 400
    assert response.json() == {"error": f"Too many query parameters (at most {limit})."}


def test_a_disallowed_host_is_a_json_400_on_the_api_and_djangos_page_elsewhere(
    api: APIClient,
) -> None:
    on_the_api = api.get("members_groups", HTTP_HOST="evil.example")
    elsewhere = Client().get("/admin/", HTTP_HOST="evil.example")

    assert on_the_api.status_code == 400
    assert on_the_api.json() == {"error": "Invalid Host header."}
    assert elsewhere.status_code == 400
    assert elsewhere["Content-Type"].startswith("text/html")


def test_health_refuses_a_post_in_the_error_format_without_a_csrf_token() -> None:
    response = Client(enforce_csrf_checks=True).post("/healthz")

    assert response.status_code == 405
    assert response.json() == {"error": "Method not allowed"}
