"""GET members_groups/{id}/members.csv: a group's exact members, streamed as CSV, guarded as
every other operation, with errors in JSON whatever the Accept header."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Iterator
from datetime import UTC
from typing import Any

import pytest
from django.db import DEFAULT_DB_ALIAS
from django.http import StreamingHttpResponse
from rest_framework.test import APIClient

from groups import exports, services
from groups.models import MembersGroup, Membership
from loyalty import permits
from loyalty.db_routing import REPLICA
from loyalty.models import Club
from members.models import Member
from members.services import bulk_create_members
from tests.factories import GroupFactory, MemberFactory

pytestmark = pytest.mark.django_db

HEADER = b"id,email,msisdn,joined_at,properties\n"
NOT_FOUND = {"error": "Not found"}
ACCEPTS = [None, "text/csv", "*/*", "application/json", "text/html", "application/xml"]


def csv_path(group: MembersGroup | int) -> str:
    pk = group.pk if isinstance(group, MembersGroup) else group
    return f"members_groups/{pk}/members.csv"


def get(client: APIClient, path: str, accept: str | None = None) -> Any:
    return client.get(path, **({} if accept is None else {"HTTP_ACCEPT": accept}))


def body(response: Any) -> bytes:
    assert response.streaming
    return b"".join(response.streaming_content)


def parsed(content: bytes) -> list[list[Any]]:
    """The data rows, with the properties column decoded from JSON."""
    rows = list(csv.reader(io.StringIO(content.decode(), newline="")))
    assert rows[0] == list(exports.EXPORT_COLUMNS)
    return [[*row[:4], json.loads(row[4])] for row in rows[1:]]


def stored(group: MembersGroup) -> list[list[Any]]:
    """The group's members as the database holds them, as the CSV must show them."""
    memberships = (
        Membership.objects.filter(group=group).select_related("member").order_by("member_id")
    )
    return [
        [
            str(row.member_id),
            row.member.email or "",
            row.member.msisdn or "",
            row.joined_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            row.member.properties,
        ]
        for row in memberships
    ]


def many_members(club: Club, count: int, prefix: str) -> list[int]:
    members = [
        Member(
            email=f"{prefix}{n}@example.com",
            msisdn=f"4790{n:06d}" if n % 3 else None,
            properties={"n": n, "tier": ["gold", "silver"][n % 2]},
        )
        for n in range(count)
    ]
    return bulk_create_members(club=club, members=members, source="import")


def test_the_csv_holds_exactly_the_groups_members_in_id_order(
    api: APIClient, club: Club, other_club: Club
) -> None:
    ids = many_members(club, 400, "red")
    group = GroupFactory(club=club, name="Chosen")
    neighbour = GroupFactory(club=club, name="Neighbour")
    services.add_member_ids(group=group, member_ids=ids[:300], source="api")
    services.remove_member_ids(group=group, member_ids=ids[100:120], source="api")
    services.add_member_ids(group=neighbour, member_ids=ids[250:], source="api")
    theirs = GroupFactory(club=other_club)
    services.add_member_ids(
        group=theirs, member_ids=many_members(other_club, 50, "blue"), source="api"
    )

    response = api.get(csv_path(group))

    assert response.status_code == 200
    rows = parsed(body(response))
    assert len(rows) == 280
    assert [int(row[0]) for row in rows] == [*ids[:100], *ids[120:300]]
    assert rows == stored(group)


def test_the_response_is_a_streamed_csv_attachment_named_after_the_group(
    api: APIClient, club: Club
) -> None:
    group = GroupFactory(club=club)

    response = api.get(csv_path(group))

    assert response.status_code == 200
    assert isinstance(response, StreamingHttpResponse)
    assert response.streaming
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"] == f'attachment; filename="members-group-{group.pk}.csv"'
    assert "Accept" not in response.get("Vary", "")


def test_members_are_read_only_when_the_body_is_sent_and_in_several_chunks(
    api: APIClient, club: Club, monkeypatch: pytest.MonkeyPatch
) -> None:
    ids = many_members(club, 300, "m")
    group = GroupFactory(club=club)
    services.add_member_ids(group=group, member_ids=ids, source="api")
    monkeypatch.setattr(exports, "CHUNK_ROWS", 50)
    started: list[str] = []
    export = exports.group_members_csv

    def watched(group: MembersGroup, *, using: str, **options: Any) -> Iterator[bytes]:
        started.append(using)
        yield from export(group, using=using, **options)

    monkeypatch.setattr(exports, "group_members_csv", watched)

    response = api.get(csv_path(group))
    assert started == []
    chunks = list(response.streaming_content)

    assert started == [DEFAULT_DB_ALIAS]
    assert len(chunks) > 2
    assert len(parsed(b"".join(chunks))) == 300


def test_commas_quotes_and_newlines_in_emails_and_properties_are_quoted(
    api: APIClient, club: Club
) -> None:
    tricky = {"address": "1 Main St,\nOslo", "note": 'say "hi", ok', "empty": ""}
    members = [
        MemberFactory(club=club, email='"ann,o.hara"@example.com', properties=tricky),
        MemberFactory(club=club, email='"say\\"hi\\",ok"@example.com', properties={}),
        MemberFactory(club=club, email=None, msisdn="4740769126", properties={"x": "a\r\nb"}),
    ]
    group = GroupFactory(club=club)
    services.add_member_ids(group=group, member_ids=[m.pk for m in members], source="api")

    content = body(api.get(csv_path(group)))

    assert b'"""ann,o.hara""@example.com"' in content
    rows = parsed(content)
    assert [row[1:3] for row in rows] == [
        ['"ann,o.hara"@example.com', ""],
        ['"say\\"hi\\",ok"@example.com', ""],
        ["", "4740769126"],
    ]
    assert [row[4] for row in rows] == [tricky, {}, {"x": "a\r\nb"}]
    assert rows == stored(group)


def test_an_empty_group_gives_the_header_only(api: APIClient, club: Club) -> None:
    group = GroupFactory(club=club)
    MemberFactory(club=club)

    assert body(api.get(csv_path(group))) == HEADER


def test_the_system_group_of_all_members_is_exported_like_any_other(
    api: APIClient, club: Club, all_members: MembersGroup
) -> None:
    members = [MemberFactory(club=club) for _ in range(3)]

    rows = parsed(body(api.get(csv_path(all_members))))

    assert [int(row[0]) for row in rows] == [m.pk for m in members]


@pytest.mark.parametrize("accept", ACCEPTS)
def test_every_accept_header_gets_the_csv_since_the_path_names_the_format(
    api: APIClient, club: Club, accept: str | None
) -> None:
    group = GroupFactory(club=club)
    services.add_member_ids(group=group, member_ids=[MemberFactory(club=club).pk], source="api")

    response = get(api, csv_path(group), accept)

    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert len(parsed(body(response))) == 1


def test_a_format_query_parameter_does_not_change_the_format(api: APIClient, club: Club) -> None:
    group = GroupFactory(club=club)

    for query in ("?format=json", "?format=api"):
        response = api.get(csv_path(group) + query)
        assert response["Content-Type"] == "text/csv; charset=utf-8", query
        assert body(response) == HEADER


@pytest.mark.parametrize("accept", ACCEPTS)
def test_a_token_without_the_show_permit_is_the_json_403(
    club: Club, make_client: Callable[..., APIClient], accept: str | None
) -> None:
    group = GroupFactory(club=club)
    client = make_client(club, [p for p in permits.ALL_PERMITS if p != permits.GROUPS_SHOW])

    response = get(client, csv_path(group), accept)

    assert response.status_code == 403
    assert response["Content-Type"] == "application/json"
    assert response.json() == {"error": f"The token lacks the {permits.GROUPS_SHOW} permit."}


def test_the_show_permit_alone_is_enough(club: Club, make_client: Callable[..., APIClient]) -> None:
    group = GroupFactory(club=club)

    response = make_client(club, [permits.GROUPS_SHOW]).get(csv_path(group))

    assert response.status_code == 200
    assert body(response) == HEADER


@pytest.mark.parametrize("accept", ACCEPTS)
def test_another_clubs_group_is_the_json_404_of_a_group_that_does_not_exist(
    api: APIClient, other_club: Club, accept: str | None
) -> None:
    theirs = GroupFactory(club=other_club)
    services.add_member_ids(
        group=theirs, member_ids=[MemberFactory(club=other_club).pk], source="api"
    )

    hidden = get(api, csv_path(theirs), accept)
    missing = get(api, csv_path(900_000_000), accept)

    for response in (hidden, missing):
        assert response.status_code == 404
        assert response["Content-Type"] == "application/json"
        assert response.json() == NOT_FOUND


@pytest.mark.parametrize("accept", ACCEPTS)
def test_a_request_without_a_token_is_the_json_401(
    club: Club, client_for: Callable[..., APIClient], accept: str | None
) -> None:
    group = GroupFactory(club=club)

    response = get(client_for(club.slug), csv_path(group), accept)

    assert response.status_code == 401
    assert response["Content-Type"] == "application/json"
    assert response.json() == {"error": "Authentication credentials were not provided."}
    assert response["WWW-Authenticate"] == 'X-Client-Authorization realm="api"'


@pytest.mark.parametrize(
    ("header", "value", "status"),
    [("HTTP_X_USER_AGENT", None, 470), ("HTTP_X_PRODUCT_NAME", "bad\x01value", 471)],
)
def test_a_missing_or_malformed_client_header_is_refused_in_json(
    club: Club,
    make_token: Callable[..., tuple[Any, str]],
    client_for: Callable[..., APIClient],
    header: str,
    value: str | None,
    status: int,
) -> None:
    group = GroupFactory(club=club)
    client = client_for(club.slug, make_token(club)[1], **{header: value})

    response = get(client, csv_path(group), "text/csv")

    assert response.status_code == status
    assert response["Content-Type"] == "application/json"
    assert set(response.json()) == {"error"}


def test_a_token_over_the_rate_limit_is_the_json_429_with_retry_after(
    api: APIClient, club: Club, settings: Any, fresh_rate_counters: None
) -> None:
    settings.API_RATE_LIMIT = "2/min"
    group = GroupFactory(club=club)

    statuses = [api.get(csv_path(group)).status_code for _ in range(2)]
    response = get(api, csv_path(group), "text/csv")

    assert statuses == [200, 200]
    assert response.status_code == 429
    assert response["Content-Type"] == "application/json"
    assert 0 < int(response["Retry-After"]) <= 60
    assert response.json()["error"].startswith("Request was throttled.")


def test_another_method_is_the_json_405(api: APIClient, club: Club) -> None:
    group = GroupFactory(club=club)

    response = api.post(csv_path(group), {}, format="json")

    assert response.status_code == 405
    assert response["Allow"] == "GET, HEAD, OPTIONS"
    assert set(response.json()) == {"error"}


def test_a_head_request_sends_the_headers_without_reading_the_members(
    api: APIClient, club: Club, monkeypatch: pytest.MonkeyPatch
) -> None:
    group = GroupFactory(club=club)

    def refuse(group: MembersGroup, *, using: str) -> Iterator[bytes]:
        raise AssertionError("a HEAD request read the members")

    monkeypatch.setattr(exports, "group_members_csv", refuse)

    response = api.head(csv_path(group))

    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert b"".join(response.streaming_content) == b""


def test_staff_download_the_csv_of_a_club_they_manage_with_their_session(
    club: Club, other_club: Club, staff_client: Callable[..., APIClient]
) -> None:
    group = GroupFactory(club=club)
    services.add_member_ids(group=group, member_ids=[MemberFactory(club=club).pk], source="api")
    client = staff_client(club.slug, manages=[club], permissions=["groups.view_membersgroup"])

    response = client.get(csv_path(group), HTTP_ACCEPT="text/html")
    refused = staff_client(other_club.slug, manages=[club]).get(csv_path(group))

    assert response.status_code == 200
    assert len(parsed(body(response))) == 1
    assert refused.status_code == 401
    assert set(refused.json()) == {"error"}


@pytest.mark.django_db(transaction=True, databases=[DEFAULT_DB_ALIAS, REPLICA])
def test_the_members_are_read_where_the_group_was_read_the_replica_for_an_api_get(
    club: Club,
    make_client: Callable[..., APIClient],
    settings: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings.DATABASE_ROUTERS = ["loyalty.db_routing.ReplicaRouter"]
    ids = many_members(club, 20, "r")
    group = GroupFactory(club=club)
    services.add_member_ids(group=group, member_ids=ids, source="api")
    aliases: list[str] = []
    export = exports.group_members_csv

    def watched(group: MembersGroup, *, using: str, **options: Any) -> Iterator[bytes]:
        aliases.append(using)
        yield from export(group, using=using, **options)

    monkeypatch.setattr(exports, "group_members_csv", watched)

    response = make_client(club).get(csv_path(group))

    assert parsed(body(response)) == stored(group)
    assert aliases == [REPLICA]
