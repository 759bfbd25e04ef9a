"""API authentication and permits: tokens, client headers, rate limit and staff sessions."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.utils import timezone
from rest_framework.test import APIClient

from audiences.models import Audience
from audiences.services import create_audience
from groups.models import MembersGroup, MembershipEvent
from loyalty import permits
from loyalty.models import ApiToken, Club
from loyalty.services import revoke_api_token
from members.models import Member, MemberImport
from tests.factories import ClubFactory, GroupFactory, MemberFactory

pytestmark = pytest.mark.django_db

# Every operation, the permit it needs, and a payload it accepts.
OPERATIONS = [
    ("get", "members_groups", permits.GROUPS_LIST, None),
    ("post", "members_groups", permits.GROUPS_CREATE, {"name": "New"}),
    ("get", "members_groups/{group}", permits.GROUPS_SHOW, None),
    ("put", "members_groups/{group}", permits.GROUPS_UPDATE, {"name": "Renamed"}),
    ("patch", "members_groups/{group}", permits.GROUPS_UPDATE, {"name": "Renamed"}),
    ("delete", "members_groups/{group}", permits.GROUPS_DESTROY, None),
    ("get", "members_groups/{group}/members", permits.GROUPS_SHOW, None),
    ("get", "members_groups/{group}/members.csv", permits.GROUPS_SHOW, None),
    (
        "post",
        "members_groups/{group}/members",
        permits.GROUPS_ADD_MEMBERS,
        {"identifier_type": "email", "identifiers": ["ann@example.com"]},
    ),
    (
        "delete",
        "members_groups/{group}/members",
        permits.GROUPS_REMOVE_MEMBERS,
        {"identifier_type": "email", "identifiers": ["ann@example.com"]},
    ),
    ("get", "members", permits.MEMBERS_LIST, None),
    ("post", "members", permits.MEMBERS_CREATE, {"email": "new@example.com"}),
    ("get", "members/{member}", permits.MEMBERS_SHOW, None),
    # PUT replaces the member whole: it must name an identifier.
    ("put", "members/{member}", permits.MEMBERS_UPDATE, {"email": "put@example.com"}),
    ("patch", "members/{member}", permits.MEMBERS_UPDATE, {"sms_status": "enabled"}),
    ("delete", "members/{member}", permits.MEMBERS_DESTROY, None),
    ("get", "members/{member}/members_groups", permits.MEMBERS_SHOW, None),
    ("get", "audiences", permits.AUDIENCES_LIST, None),
    ("post", "audiences", permits.AUDIENCES_CREATE, {"name": "New", "conditions": []}),
    ("get", "audiences/{audience}", permits.AUDIENCES_SHOW, None),
    ("put", "audiences/{audience}", permits.AUDIENCES_UPDATE, {"name": "Renamed"}),
    ("patch", "audiences/{audience}", permits.AUDIENCES_UPDATE, {"name": "Renamed"}),
    ("delete", "audiences/{audience}", permits.AUDIENCES_DESTROY, None),
    ("post", "audiences/preview", permits.AUDIENCES_PREVIEW, {"conditions": []}),
    ("get", "members_groups/{group}/members/{member}/explain", permits.GROUPS_SHOW, None),
    ("get", "members_groups/{group}/events", permits.GROUPS_EVENTS, None),
    ("get", "members_groups/{group}/stats", permits.GROUPS_EVENTS, None),
    (
        "post",
        "members/imports",
        permits.MEMBERS_IMPORTS_CREATE,
        {"operation": "create", "members": [{"email": "new@example.com"}]},
    ),
    ("get", "members/imports/{member_import}", permits.MEMBERS_IMPORTS_SHOW, None),
]
OPERATION_IDS = [f"{method} {path}" for method, path, _permit, _payload in OPERATIONS]


@pytest.fixture
def objects(club: Club) -> dict[str, Any]:
    """One group, member and spare audience of the club, by the name the paths use."""
    member = MemberFactory(club=club, email="ann@example.com")
    return {
        "group": GroupFactory(club=club).pk,
        "member": member.pk,
        "audience": create_audience(club=club, name="Spare").pk,
        "member_import": MemberImport.objects.create(
            club=club,
            import_id="existing",
            operation="create",
            member_identifier_type="email",
            multi_values_update_mode="replace",
        ).import_id,
    }


def snapshot() -> tuple[Any, ...]:
    return (
        list(MembersGroup.objects.values_list("id", "name", "members_count").order_by("id")),
        list(Member.objects.values_list("id", "sms_status").order_by("id")),
        list(Audience.objects.values_list("id", "name").order_by("id")),
    )


def call(client: APIClient, method: str, path: str, payload: Any, objects: dict[str, Any]) -> Any:
    return getattr(client, method)(path.format(**objects), payload)


@pytest.mark.parametrize(("method", "path", "permit", "payload"), OPERATIONS, ids=OPERATION_IDS)
def test_a_token_without_the_operations_permit_is_403_and_changes_nothing(
    club: Club,
    make_client: Callable[..., APIClient],
    objects: dict[str, int],
    method: str,
    path: str,
    permit: str,
    payload: Any,
) -> None:
    client = make_client(club, [p for p in permits.ALL_PERMITS if p != permit])
    before = snapshot()

    response = call(client, method, path, payload, objects)

    assert response.status_code == 403
    assert response.json() == {"error": f"The token lacks the {permit} permit."}
    assert snapshot() == before


@pytest.mark.parametrize(("method", "path", "permit", "payload"), OPERATIONS, ids=OPERATION_IDS)
def test_the_operations_permit_alone_is_enough(
    club: Club,
    make_client: Callable[..., APIClient],
    objects: dict[str, int],
    method: str,
    path: str,
    permit: str,
    payload: Any,
) -> None:
    response = call(make_client(club, [permit]), method, path, payload, objects)

    assert response.status_code in (200, 201, 202, 204), response.content


@pytest.mark.parametrize(("method", "path", "permit", "payload"), OPERATIONS, ids=OPERATION_IDS)
def test_a_request_without_a_token_is_401_and_changes_nothing(
    club: Club,
    client_for: Callable[..., APIClient],
    objects: dict[str, int],
    method: str,
    path: str,
    permit: str,
    payload: Any,
) -> None:
    before = snapshot()

    response = call(client_for(club.slug), method, path, payload, objects)

    assert response.status_code == 401
    assert response.json() == {"error": "Authentication credentials were not provided."}
    assert response["WWW-Authenticate"] == 'X-Client-Authorization realm="api"'
    assert snapshot() == before


def test_an_unknown_token_is_401(club: Club, client_for: Callable[..., APIClient]) -> None:
    response = client_for(club.slug, "mgs_not-a-real-token").get("members_groups")

    assert response.status_code == 401
    assert response.json() == {"error": "Invalid token for this loyalty club."}


def test_a_revoked_token_is_401(
    club: Club,
    make_token: Callable[..., tuple[ApiToken, str]],
    client_for: Callable[..., APIClient],
) -> None:
    token, raw = make_token(club)
    client = client_for(club.slug, raw)
    assert client.get("members_groups").status_code == 200

    revoke_api_token(token=token)
    response = client.get("members_groups")

    # The same answer as an unknown token: a leaked, revoked token confirms nothing.
    assert response.status_code == 401
    assert response.json() == {"error": "Invalid token for this loyalty club."}


def test_another_clubs_token_and_an_unknown_club_get_the_same_401(
    club: Club,
    other_club: Club,
    make_token: Callable[..., tuple[ApiToken, str]],
    client_for: Callable[..., APIClient],
) -> None:
    _token, raw = make_token(other_club)

    existing = client_for(club.slug, raw).get("members_groups")
    unknown = client_for("no-such-club", raw).get("members_groups")
    unknown_without_token = client_for("no-such-club").get("members_groups")

    assert existing.status_code == unknown.status_code == 401
    assert existing.json() == unknown.json() == {"error": "Invalid token for this loyalty club."}
    assert unknown_without_token.status_code == 401


@pytest.mark.parametrize(
    ("missing", "header"),
    [("HTTP_X_USER_AGENT", "X-User-Agent"), ("HTTP_X_PRODUCT_NAME", "X-Product-Name")],
)
def test_a_token_request_without_a_client_header_is_470_before_permits_are_checked(
    club: Club,
    make_token: Callable[..., tuple[ApiToken, str]],
    client_for: Callable[..., APIClient],
    missing: str,
    header: str,
) -> None:
    _token, raw = make_token(club, [])

    response = client_for(club.slug, raw, **{missing: None}).get("members_groups")

    assert response.status_code == 470
    assert response.json() == {"error": f"The {header} header is required."}


@pytest.mark.parametrize("value", ["", "   ", "x" * 256, "bad\x01value", "tab\tvalue", "del\x7f"])
@pytest.mark.parametrize("header", ["HTTP_X_USER_AGENT", "HTTP_X_PRODUCT_NAME"])
def test_a_malformed_client_header_is_471(
    club: Club,
    make_token: Callable[..., tuple[ApiToken, str]],
    client_for: Callable[..., APIClient],
    header: str,
    value: str,
) -> None:
    _token, raw = make_token(club)

    response = client_for(club.slug, raw, **{header: value}).get("members_groups")

    assert response.status_code == 471
    assert response.json()["error"].endswith("must be 1 to 255 printable characters.")


def test_client_headers_of_255_characters_are_accepted(
    club: Club,
    make_token: Callable[..., tuple[ApiToken, str]],
    client_for: Callable[..., APIClient],
) -> None:
    _token, raw = make_token(club)

    response = client_for(club.slug, raw, HTTP_X_USER_AGENT="ü" * 255).get("members_groups")

    assert response.status_code == 200


def test_last_used_at_is_written_at_most_once_a_minute(
    club: Club,
    make_token: Callable[..., tuple[ApiToken, str]],
    client_for: Callable[..., APIClient],
) -> None:
    token, raw = make_token(club)
    client = client_for(club.slug, raw)

    client.get("members_groups")
    token.refresh_from_db()
    first = token.last_used_at
    client.get("members_groups")
    token.refresh_from_db()
    assert first is not None
    assert token.last_used_at == first

    ApiToken.objects.filter(pk=token.pk).update(last_used_at=first - timedelta(minutes=2))
    client.get("members_groups")
    token.refresh_from_db()
    assert token.last_used_at is not None
    assert token.last_used_at > first - timedelta(seconds=1)
    assert token.last_used_at <= timezone.now()


def test_a_token_over_the_rate_limit_is_429_with_retry_after(
    club: Club,
    make_client: Callable[..., APIClient],
    settings: Any,
    fresh_rate_counters: None,
) -> None:
    settings.API_RATE_LIMIT = "2/min"
    busy, other = make_client(club), make_client(club)

    statuses = [busy.get("members_groups").status_code for _ in range(2)]
    response = busy.get("members_groups")

    assert statuses == [200, 200]
    assert response.status_code == 429
    assert 0 < int(response["Retry-After"]) <= 60
    assert response.json()["error"].startswith("Request was throttled.")
    assert other.get("members_groups").status_code == 200


def test_options_does_not_tell_whether_an_id_exists(
    club: Club,
    make_token: Callable[..., tuple[ApiToken, str]],
    client_for: Callable[..., APIClient],
) -> None:
    _, raw = make_token(club, permits=[permits.GROUPS_LIST])
    client = client_for(club.slug, raw)
    member = MemberFactory(club=club)

    existing = client.options(f"members/{member.pk}")
    missing = client.options(f"members/{member.pk + 1000}")

    assert existing.status_code == missing.status_code == 200
    assert existing.json() == missing.json()
    assert "PUT" in existing.json()["actions"]


# Staff sessions ----------------------------------------------------------------------------------


def test_staff_use_the_api_of_the_clubs_they_manage_without_headers_or_permits(
    club: Club, staff_client: Callable[..., APIClient]
) -> None:
    client = staff_client(
        club.slug,
        manages=[club],
        permissions=["groups.view_membersgroup", "groups.change_membersgroup"],
    )
    group = GroupFactory(club=club)
    member = MemberFactory(club=club)

    listed = client.get("members_groups")
    added = client.post(
        f"members_groups/{group.pk}/members", {"identifier_type": "id", "identifiers": [member.pk]}
    )

    assert listed.status_code == 200
    assert added.status_code == 200
    assert added.json()["added"] == 1
    event = MembershipEvent.objects.get(group_id=group.pk)
    assert event.actor.startswith("user:staff")


def test_staff_do_through_the_api_only_what_their_admin_permissions_allow(
    club: Club, staff_client: Callable[..., APIClient]
) -> None:
    viewer = staff_client(
        club.slug, manages=[club], permissions=["groups.view_membersgroup", "members.view_member"]
    )
    group = GroupFactory(club=club)
    member = MemberFactory(club=club)

    listed = viewer.get("members_groups")
    added = viewer.post(
        f"members_groups/{group.pk}/members", {"identifier_type": "id", "identifiers": [member.pk]}
    )
    deleted = viewer.delete(f"members/{member.pk}")
    created = viewer.post("members_groups", {"name": "Mine"})
    audiences = viewer.get("audiences")

    assert listed.status_code == 200
    assert [added.status_code, deleted.status_code, created.status_code] == [403, 403, 403]
    assert audiences.status_code == 403
    assert Member.objects.filter(pk=member.pk).exists()
    assert not MembershipEvent.objects.filter(group_id=group.pk).exists()


def test_staff_cannot_use_the_api_of_a_club_they_do_not_manage(
    club: Club, other_club: Club, staff_client: Callable[..., APIClient]
) -> None:
    client = staff_client(club.slug, manages=[other_club])

    response = client.get("members_groups")

    assert response.status_code == 401
    assert response.json() == {"error": "Authentication credentials were not provided."}


def test_a_logged_in_user_who_is_not_staff_is_401(
    club: Club, client_for: Callable[..., APIClient]
) -> None:
    client = client_for(club.slug)
    client.force_login(User.objects.create_user(username="visitor"))

    assert client.get("members_groups").status_code == 401


def test_a_superuser_uses_any_club_and_gets_404_for_an_unknown_one(
    club: Club, staff_client: Callable[..., APIClient]
) -> None:
    ClubFactory(slug="third-club")
    client = staff_client(club.slug, superuser=True)

    assert client.get("members_groups").status_code == 200
    assert client.get("/v3/third-club/members").status_code == 200
    unknown = client.get("/v3/no-such-club/members")
    assert unknown.status_code == 404
    assert unknown.json() == {"error": "Not found"}


def test_staff_writes_need_the_csrf_token(
    club: Club, staff_client: Callable[..., APIClient]
) -> None:
    client = staff_client(club.slug, manages=[club], enforce_csrf_checks=True)

    response = client.post("members_groups", {"name": "No CSRF"})

    assert response.status_code == 403
    assert response.json()["error"].startswith("CSRF Failed")
    assert not MembersGroup.objects.filter(name="No CSRF").exists()


def test_staff_get_json_like_everyone_even_asking_for_html(
    club: Club, staff_client: Callable[..., APIClient]
) -> None:
    client = staff_client(club.slug, manages=[club], permissions=["groups.view_membersgroup"])

    response = client.get("members_groups", HTTP_ACCEPT="text/html")

    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    assert "members_groups" in response.json()
