"""JSON only under /v3/, whatever Accept or ?format= say, and one body per error status."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from django.test import Client

from groups import services as group_services
from groups.models import MembersGroup
from loyalty.api.renderers import json_bytes
from loyalty.models import Club
from tests.api_fixtures import ClubClient
from tests.factories import GroupFactory

pytestmark = pytest.mark.django_db

# Java's HttpURLConnection default, a browser's, and types the API never writes.
ACCEPTS = [
    "text/html, image/gif, image/jpeg, *; q=.2, */*; q=.2",
    "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
    "text/html",
    "application/xml",
    "application/json; indent=4",
]
FORMATS = ["api", "xml", "json"]


def written_by_the_api(response: Any) -> Any:
    """The JSON body, after checking it is exactly what the API's one writer makes of it."""
    assert response["Content-Type"] == "application/json", response.content[:200]
    body = json.loads(response.content)
    assert response.content == json_bytes(body)
    return body


@pytest.mark.parametrize("accept", ACCEPTS)
def test_every_answer_is_json_whatever_accept_prefers(
    api: ClubClient, club: Club, all_members: MembersGroup, accept: str
) -> None:
    api.credentials(**api._credentials, HTTP_ACCEPT=accept)

    created = api.post("members_groups", {"name": "Red"}, format="json")
    listed = api.get("members_groups")
    missing = api.get("members_groups/999999")
    refused = api.post("members_groups", {"system": True}, format="json")
    not_allowed = api.delete(f"members_groups/{all_members.pk}")
    unknown_path = api.get("no_such_thing")

    assert written_by_the_api(created)["name"] == "Red"
    assert created.status_code == 201
    assert written_by_the_api(listed)["pagination_info"]["total_count"] == 2
    assert written_by_the_api(missing) == {"error": "Not found"}
    assert written_by_the_api(refused)["details"] == {
        "system": [{"error": "not_allowed", "options": {}}]
    }
    assert not_allowed.status_code == 405
    written_by_the_api(not_allowed)
    assert written_by_the_api(unknown_path) == {"error": "Not found"}


@pytest.mark.parametrize("format_", FORMATS)
def test_every_answer_is_json_whatever_format_names(
    api: ClubClient, club: Club, format_: str
) -> None:
    group = GroupFactory(club=club, name="Red")

    shown = api.get(f"members_groups/{group.pk}?format={format_}")
    listed = api.get(f"members_groups?format={format_}")
    missing = api.get(f"members_groups/999999?format={format_}")

    assert written_by_the_api(shown)["id"] == group.pk
    assert written_by_the_api(listed)["members_groups"]
    assert written_by_the_api(missing) == {"error": "Not found"}


def test_errors_before_a_token_is_checked_are_json_too(
    client_for: Callable[..., ClubClient], club: Club
) -> None:
    anonymous = client_for(club.slug, HTTP_ACCEPT="text/html")

    response = anonymous.get("members_groups", HTTP_ACCEPT="text/html")

    assert response.status_code == 401
    written_by_the_api(response)


def test_the_schema_is_json_and_the_docs_stay_the_human_page(client: Client) -> None:
    schema = client.get("/v3/schema/", HTTP_ACCEPT="text/html")
    yaml_asked = client.get("/v3/schema/?format=yaml")
    docs = client.get("/v3/docs/", HTTP_ACCEPT="text/html")

    assert schema["Content-Type"] == yaml_asked["Content-Type"]
    assert schema["Content-Type"] == "application/vnd.oai.openapi+json"
    assert "paths" in json.loads(schema.content)
    assert "paths" in json.loads(yaml_asked.content)
    assert docs["Content-Type"].startswith("text/html")


@pytest.mark.parametrize("debug", [False, True])
def test_a_404_is_the_same_bytes_wherever_it_comes_from(
    api: ClubClient, club: Club, settings: Any, debug: bool
) -> None:
    settings.DEBUG = debug
    paths = [
        "members_groups/999999",  # the view: unknown id
        "members_groups/12345678901234567890",  # an id beyond a bigint: no route
        "members_groups/abc",  # a malformed id
        "members_groups/",  # a trailing slash
        "no_such_thing",  # unknown under the club
        "/v3/",  # unknown outside any club
        "/v3/schema/nothing",
    ]

    bodies = {path: api.get(path) for path in paths}

    assert {path: r.status_code for path, r in bodies.items()} == dict.fromkeys(paths, 404)
    assert {r.content for r in bodies.values()} == {b'{"error":"Not found"}'}
    assert all(r["Content-Type"] == "application/json" for r in bodies.values())


def test_a_400_outside_drf_is_written_like_one_of_drf(api: ClubClient) -> None:
    too_many = api.get("members_groups?" + "&".join(f"x{n}=1" for n in range(1001)))
    not_json = api.generic("POST", "members_groups", b'{"name": ', content_type="application/json")

    assert (too_many.status_code, not_json.status_code) == (400, 400)
    written_by_the_api(too_many)
    written_by_the_api(not_json)


@pytest.mark.parametrize("debug", [False, True])
def test_refusals_and_errors_outside_drf_are_json_with_debug_on_or_off(
    api: ClubClient, settings: Any, monkeypatch: pytest.MonkeyPatch, debug: bool
) -> None:
    settings.DEBUG = debug
    limit = settings.DATA_UPLOAD_MAX_NUMBER_FIELDS
    api.raise_request_exception = False

    def explode(**kwargs: Any) -> None:
        raise RuntimeError("secret internals")

    monkeypatch.setattr(group_services, "create_group", explode)

    too_many = api.get("members_groups?" + "&".join(f"x{n}=1" for n in range(limit + 1)))
    bad_host = api.get("members_groups", HTTP_HOST="evil.example")
    bad_host_unknown_path = api.get("no_such_thing", HTTP_HOST="evil.example")
    crashed = api.post("members_groups", {"name": "Boom"}, format="json")

    assert too_many.status_code == 400
    assert written_by_the_api(too_many) == {
        "error": f"Too many query parameters (at most {limit})."
    }
    assert (bad_host.status_code, bad_host_unknown_path.status_code) == (400, 400)
    assert written_by_the_api(bad_host) == {"error": "Invalid Host header."}
    assert written_by_the_api(bad_host_unknown_path) == {"error": "Invalid Host header."}
    assert crashed.status_code == 500
    assert written_by_the_api(crashed) == {"error": "Internal server error"}
    # Reported as unhandled (got_request_exception, which error reports hear), as with DEBUG off.
    api.raise_request_exception = True
    with pytest.raises(RuntimeError, match="secret internals"):
        api.post("members_groups", {"name": "Boom"}, format="json")


def test_with_debug_on_pages_outside_the_api_keep_djangos_debug_page(
    client: Client, settings: Any
) -> None:
    settings.DEBUG = True

    response = client.get("/admin/", HTTP_HOST="evil.example")

    assert response.status_code == 400
    assert "DisallowedHost" in response.content.decode()
