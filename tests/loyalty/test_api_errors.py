"""The API's error format on every path: bodies that are not JSON, 404, 405, 413, 422 and 500."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from rest_framework.test import APIClient

from groups import services as group_services
from groups.models import MembersGroup, Membership
from loyalty.models import Club
from tests.factories import GroupFactory, MemberFactory

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    ("body", "content_type", "error"),
    [
        ('{"name": ', "application/json", "JSON parse error - "),
        ("[1, 2]", "application/json", "The body must be a JSON object."),
        ('"Red"', "application/json", "The body must be a JSON object."),
        ("name=Red", "application/x-www-form-urlencoded", "The body must be JSON. "),
        ("Red", "text/plain", "The body must be JSON. "),
    ],
)
def test_a_body_that_is_not_a_json_object_is_400_and_creates_nothing(
    api: APIClient, body: str, content_type: str, error: str
) -> None:
    before = MembersGroup.objects.count()

    response = api.generic("POST", "members_groups", body, content_type)

    assert response.status_code == 400
    assert set(response.json()) == {"error"}
    assert response.json()["error"].startswith(error)
    assert MembersGroup.objects.count() == before


@pytest.mark.parametrize("debug", [False, True])
@pytest.mark.parametrize(
    "path",
    [
        "members_groups/abc",
        "members_groups/12345678901234567890",
        "members_groups/1/nothing",
        "members_groups/",
        "nothing",
        "/v3/",
    ],
)
def test_unknown_api_paths_are_a_json_404(
    api: APIClient, settings: Any, debug: bool, path: str
) -> None:
    settings.DEBUG = debug

    response = api.get(path)

    assert response.status_code == 404
    assert response.json() == {"error": "Not found"}


def test_paths_outside_the_api_keep_djangos_404_page(client: Any) -> None:
    response = client.get("/nowhere")

    assert response.status_code == 404
    assert response["Content-Type"].startswith("text/html")


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("put", "members_groups"),
        ("delete", "members"),
        ("post", "members/{member}"),
        ("get", "audiences/preview"),
        ("patch", "members_groups/{group}/members"),
        ("post", "members/{member}/members_groups"),
    ],
)
def test_a_method_an_endpoint_does_not_offer_is_405(
    api: APIClient, club: Club, method: str, path: str
) -> None:
    ids = {"member": MemberFactory(club=club).pk, "group": GroupFactory(club=club).pk}

    response = getattr(api, method)(path.format(**ids), {})

    assert response.status_code == 405
    assert response.json() == {"error": f'Method "{method.upper()}" not allowed.'}


def test_a_body_over_the_upload_limit_is_413_and_changes_nothing(
    api: APIClient, club: Club, settings: Any
) -> None:
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    group = GroupFactory(club=club)
    members = MemberFactory.create_batch(3, club=club)
    emails = [m.email for m in members] + [f"nobody{i}@example.com" for i in range(60)]
    payload = {"identifier_type": "email", "identifiers": emails}
    assert len(json.dumps(payload)) > 1000

    response = api.post(f"members_groups/{group.pk}/members", payload)
    small = api.post(
        f"members_groups/{group.pk}/members",
        {"identifier_type": "email", "identifiers": emails[:3]},
    )

    assert response.status_code == 413
    assert response.json() == {"error": "The request body is larger than 1000 bytes."}
    assert small.status_code == 200
    assert Membership.objects.filter(group=group).count() == 3


def test_validation_errors_are_422_with_details_shaped_like_the_payload(api: APIClient) -> None:
    response = api.post(
        "members", {"email": "a@example.com", "subunit_ids": [1, "x", 3, None], "consents": 5}
    )

    assert response.status_code == 422
    assert response.json() == {
        "error": "Invalid parameters",
        "details": {
            "subunit_ids": {
                "1": [{"error": "invalid", "options": {}}],
                "3": [{"error": "null", "options": {}}],
            },
            "consents": [{"error": "not_an_object", "options": {}}],
        },
    }


def test_an_unexpected_exception_is_a_500_without_a_traceback(
    club: Club,
    client_for: Callable[..., APIClient],
    make_token: Callable[..., Any],
    settings: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings.DEBUG = False

    def explode(**kwargs: Any) -> None:
        raise RuntimeError("secret internals")

    monkeypatch.setattr(group_services, "create_group", explode)
    client = client_for(club.slug, make_token(club)[1])
    client.raise_request_exception = False

    response = client.post("members_groups", {"name": "Boom"})

    assert response.status_code == 500
    assert response.json() == {"error": "Internal server error"}
    assert b"secret" not in response.content
    assert b"Traceback" not in response.content
