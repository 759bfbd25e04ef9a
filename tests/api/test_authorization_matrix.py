"""Every operation of the schema, for every object and every caller: denials change nothing."""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter
from dataclasses import dataclass
from typing import Any

import pytest
from django.db import transaction
from django.urls import resolve
from drf_spectacular.generators import SchemaGenerator
from drf_spectacular.renderers import OpenApiJsonRenderer
from rest_framework.test import APIClient

from audiences.models import Audience
from audiences.services import create_audience
from groups import services as group_services
from groups.models import MembersGroup, Membership, MembershipEvent
from loyalty.models import Club
from loyalty.permits import ALL_PERMITS
from loyalty.services import create_api_token, revoke_api_token
from members import import_services
from members.models import Member, MemberImport
from tests.factories import ClubFactory, MemberFactory

pytestmark = pytest.mark.django_db

SCHEMA = json.loads(OpenApiJsonRenderer().render(SchemaGenerator().get_schema(public=True)))
CLIENT_HEADERS = {"HTTP_X_USER_AGENT": "matrix/1.0", "HTTP_X_PRODUCT_NAME": "Authorization matrix"}
NONEXISTENT = {"int": "900000000000", "import": "no-such-import"}
PARAMETER = re.compile(r"\{(\w+)\}")
# A valid body per request component, so that the allowed call can succeed; {} otherwise.
BODIES: dict[str, dict[str, Any]] = {
    "MemberPayload": {"email": "new@matrix.example"},
    "BulkIdentifiers": {"identifier_type": "email", "identifiers": ["new@matrix.example"]},
    "PreviewPayload": {"conditions": []},
    "MemberImportPayload": {"operation": "create", "members": [{"email": "new@matrix.example"}]},
}
# Every club-scoped table an API call could change, with the columns compared.
SNAPSHOT_TABLES = (Member, MembersGroup, Membership, MembershipEvent, Audience, MemberImport)


@dataclass(frozen=True)
class Operation:
    method: str
    path: str
    body: dict[str, Any] | None

    @property
    def label(self) -> str:
        return f"{self.method} {self.path}"


def operations() -> list[Operation]:
    found = []
    for path, item in SCHEMA["paths"].items():
        for method, operation in item.items():
            if method == "parameters":
                continue
            body = None
            content = operation.get("requestBody", {}).get("content", {})
            if "application/json" in content:
                ref = content["application/json"]["schema"].get("$ref", "")
                body = BODIES.get(ref.rpartition("/")[2], {})
            found.append(Operation(method.upper(), path, body))
    return found


# The kind of object each path parameter names (one name per kind).
RESOURCES = {
    "members_group_id": "group",
    "member_id": "member",
    "audience_id": "audience",
    "import_id": "import",
}


@dataclass(frozen=True)
class Side:
    club: Club
    objects: dict[str, str]


def seed(slug: str) -> Side:
    club = ClubFactory(slug=slug, name=slug)
    member = MemberFactory(club=club, email=f"ann@{slug}.example")
    group = group_services.create_group(club=club, name="Manual", type="Color")
    group_services.add_member_ids(group=group, member_ids=[member.pk], source="api")
    spare = create_audience(club=club, name="Spare", conditions=[])
    member_import = import_services.create_import(
        club=club,
        operation="create",
        members=[{"email": f"bob@{slug}.example"}],
        member_identifier_type="email",
        multi_values_update_mode="replace",
        import_id=f"import-{slug}",
    )
    import_services.run_import(import_pk=member_import.pk)
    objects = {
        "group": str(group.pk),
        "member": str(member.pk),
        "audience": str(spare.pk),
        "import": member_import.import_id,
    }
    return Side(club=club, objects=objects)


def snapshot() -> tuple[tuple[int, str], ...]:
    """Row count and checksum of every club-scoped table."""
    sums = []
    for model in SNAPSHOT_TABLES:
        rows = list(model.objects.order_by("pk").values_list())
        sums.append((len(rows), hashlib.sha256(repr(rows).encode()).hexdigest()))
    return tuple(sums)


def path_for(operation: Operation, slug: str, objects: dict[str, str] | None) -> str:
    def fill(match: re.Match[str]) -> str:
        name = match.group(1)
        if name == "loyalty_club_slug":
            return slug
        kind = RESOURCES[name]
        if objects is None:
            return NONEXISTENT["import" if kind == "import" else "int"]
        return objects[kind]

    return PARAMETER.sub(fill, operation.path)


def required_permit(path: str, method: str) -> str:
    match = resolve(path)
    view = match.func.cls
    return str(view.required_permits[match.func.actions[method.lower()]])


def test_every_operation_refuses_every_wrong_caller_and_object_without_a_trace(
    settings: Any, request: pytest.FixtureRequest
) -> None:
    settings.API_RATE_LIMIT = "1000000/min"
    ours, theirs = seed("own-club"), seed("other-club")
    right = create_api_token(club=ours.club, name="right", permits=ALL_PERMITS)[1]
    other_club = create_api_token(club=theirs.club, name="other", permits=ALL_PERMITS)[1]
    revoked_token, revoked = create_api_token(club=ours.club, name="revoked", permits=ALL_PERMITS)
    revoke_api_token(token=revoked_token)
    client = APIClient()
    totals: Counter[str] = Counter()
    problems: list[str] = []
    denial_bodies: dict[tuple[str, str, str], dict[str, Any]] = {}
    ops = operations()
    assert ops

    for operation in ops:
        with_ids = PARAMETER.findall(operation.path) != ["loyalty_club_slug"]
        targets = {"own": ours.objects}
        if with_ids:
            targets |= {"other club's": theirs.objects, "nonexistent": None}
        permit = required_permit(path_for(operation, "own-club", ours.objects), operation.method)
        without_permit = create_api_token(
            club=ours.club, name="short", permits=[p for p in ALL_PERMITS if p != permit]
        )[1]
        callers = {
            "right token": right,
            "other club's token": other_club,
            "token without the permit": without_permit,
            "revoked token": revoked,
            "no token": None,
        }
        for target, objects in targets.items():
            path = path_for(operation, "own-club", objects)
            for caller, raw in callers.items():
                headers = dict(CLIENT_HEADERS)
                if raw is not None:
                    headers["HTTP_X_CLIENT_AUTHORIZATION"] = raw
                case = f"{operation.label} on {target} object by {caller}"
                before = snapshot()
                with transaction.atomic():
                    response = client.generic(
                        operation.method,
                        path,
                        json.dumps(operation.body) if operation.body is not None else "",
                        content_type="application/json",
                        **headers,
                    )
                    transaction.set_rollback(True)
                totals["calls"] += 1
                if caller == "right token" and target == "own":
                    if not 200 <= response.status_code < 300:
                        problems.append(f"{case}: {response.status_code} {response.content!r}")
                    continue
                totals["to deny"] += 1
                if caller == "right token":
                    expected = 404
                elif caller == "token without the permit":
                    expected = 403
                else:
                    expected = 401
                body = response.json() if response.status_code == expected else None
                if body is None or set(body) != {"error"}:
                    problems.append(f"{case}: {response.status_code} {response.content!r}")
                elif snapshot() != before:
                    problems.append(f"{case}: the database changed")
                else:
                    totals["denied"] += 1
                    denial_bodies[(operation.label, caller, target)] = body

    # An object of another club is refused exactly as one that does not exist.
    for (label, caller, target), body in denial_bodies.items():
        if target == "other club's" and body != denial_bodies.get((label, caller, "nonexistent")):
            problems.append(f"{label} by {caller}: another club's object is told apart")

    assert problems == []
    assert totals["denied"] == totals["to deny"] == totals["calls"] - len(ops)
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    if reporter is not None and capture is not None:
        with capture.global_and_fixture_disabled():
            reporter.write_line(
                f"\nauthorization matrix: {len(ops)} operations, "
                f"{totals['denied']}/{totals['to deny']} denied, {len(ops)} allowed, "
                f"{totals['calls']} calls"
            )
