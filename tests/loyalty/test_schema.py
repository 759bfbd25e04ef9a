"""The OpenAPI schema: valid, warning-free, complete, and served with offline docs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from django.core.management import call_command
from django.test import Client

PREFIX = "/v3/{loyalty_club_slug}/"
OPERATIONS = {
    "members_groups": {"get", "post"},
    "members_groups/{id}": {"get", "put", "patch", "delete"},
    "members_groups/{id}/members": {"get", "post", "delete"},
    "members_groups/{id}/members.csv": {"get"},
    "members_groups/{id}/members/{member_id}/explain": {"get"},
    "members_groups/{id}/events": {"get"},
    "members_groups/{id}/stats": {"get"},
    "members": {"get", "post"},
    "members/{id}": {"get", "put", "patch", "delete"},
    "members/{member_pk}/members_groups": {"get"},
    "members/imports": {"post"},
    "members/imports/{import_id}": {"get"},
    "audiences": {"get", "post"},
    "audiences/{id}": {"get", "put", "patch", "delete"},
    "audiences/preview": {"post"},
}


@pytest.fixture(scope="module")
def schema(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The schema as ``manage.py spectacular --validate --fail-on-warn`` writes it."""
    path: Path = tmp_path_factory.mktemp("schema") / "schema.yaml"
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(path))
    return dict(yaml.safe_load(path.read_text()))


def test_the_schema_validates_without_warnings_and_has_every_operation(
    schema: dict[str, Any],
) -> None:
    paths = {
        path.removeprefix(PREFIX): {m for m in item if m != "parameters"}
        for path, item in schema["paths"].items()
    }
    assert paths == OPERATIONS


def test_every_operation_documents_its_errors(schema: dict[str, Any]) -> None:
    for path, item in schema["paths"].items():
        for method, operation in item.items():
            codes = set(operation["responses"])
            assert {"401", "403", "404", "429", "470", "471"} <= codes, (method, path)
            if method in ("post", "put", "patch") or "requestBody" in operation:
                assert {"400", "413", "422"} <= codes, (method, path)
    group = schema["paths"][PREFIX + "members_groups/{id}"]
    assert "405" in group["delete"]["responses"]
    assert "405" in schema["paths"][PREFIX + "members_groups/{id}/members"]["post"]["responses"]
    assert "Retry-After" in group["get"]["responses"]["429"]["headers"]


def test_the_bulk_removal_documents_its_delete_body(schema: dict[str, Any]) -> None:
    remove = schema["paths"][PREFIX + "members_groups/{id}/members"]["delete"]

    assert remove["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/BulkIdentifiers"
    }
    assert set(remove["responses"]["200"]["content"]["application/json"]["schema"].values()) == {
        "#/components/schemas/BulkRemoveReport"
    }


def test_list_parameters_are_documented(schema: dict[str, Any]) -> None:
    def names(path: str) -> set[str]:
        return {p["name"] for p in schema["paths"][PREFIX + path]["get"]["parameters"]}

    assert {"page_no", "per_page", "sort_by[]", "sort_directions[]"} <= names("members")
    assert {"ids[]", "name", "type", "automatic", "system", "search"} <= names("members_groups")
    assert {"ids[]", "email", "msisdn", "properties", "members_group_ids[]", "search"} <= names(
        "members"
    )
    assert {"after_id", "page_no", "per_page"} <= names("members_groups/{id}/members")


def test_the_headers_are_documented_as_security_schemes(schema: dict[str, Any]) -> None:
    schemes = schema["components"]["securitySchemes"]

    assert {s["name"] for s in schemes.values() if s["in"] == "header"} == {
        "X-Client-Authorization",
        "X-User-Agent",
        "X-Product-Name",
    }
    operation = schema["paths"][PREFIX + "members"]["get"]
    assert {"clientToken": [], "userAgent": [], "productName": []} in operation["security"]


def test_the_schema_and_docs_are_served_without_credentials(client: Client) -> None:
    served = client.get("/v3/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    docs = client.get("/v3/docs/")

    assert served.status_code == 200
    assert PREFIX + "members_groups" in served.json()["paths"]
    assert docs.status_code == 200
    assert docs["Content-Type"].startswith("text/html")
    html = docs.content.decode()
    assert "/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js" in html
    assert "cdn.jsdelivr.net" not in html
