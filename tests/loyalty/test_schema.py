"""The OpenAPI schema: valid, warning-free, complete, generator-friendly, served with docs."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from django.core.management import call_command
from django.test import Client
from openapi_schema_validator import OAS30Validator
from openapi_spec_validator import validate

from loyalty.api.pagination import MAX_ID

PREFIX = "/v3/{loyalty_club_slug}/"
# Every operation, by the operationId chosen for it.
OPERATIONS = {
    "list_members_groups": ("get", "members_groups"),
    "create_members_group": ("post", "members_groups"),
    "get_members_group": ("get", "members_groups/{members_group_id}"),
    "update_members_group": ("put", "members_groups/{members_group_id}"),
    "patch_members_group": ("patch", "members_groups/{members_group_id}"),
    "delete_members_group": ("delete", "members_groups/{members_group_id}"),
    "list_group_members": ("get", "members_groups/{members_group_id}/members"),
    "add_group_members": ("post", "members_groups/{members_group_id}/members"),
    "remove_group_members": ("delete", "members_groups/{members_group_id}/members"),
    "export_group_members_csv": ("get", "members_groups/{members_group_id}/members.csv"),
    "explain_group_membership": (
        "get",
        "members_groups/{members_group_id}/members/{member_id}/explain",
    ),
    "list_group_events": ("get", "members_groups/{members_group_id}/events"),
    "get_group_stats": ("get", "members_groups/{members_group_id}/stats"),
    "list_members": ("get", "members"),
    "create_member": ("post", "members"),
    "get_member": ("get", "members/{member_id}"),
    "replace_member": ("put", "members/{member_id}"),
    "patch_member": ("patch", "members/{member_id}"),
    "delete_member": ("delete", "members/{member_id}"),
    "list_member_groups": ("get", "members/{member_id}/members_groups"),
    "import_members": ("post", "members/imports"),
    "get_member_import": ("get", "members/imports/{import_id}"),
    "list_audiences": ("get", "audiences"),
    "create_audience": ("post", "audiences"),
    "get_audience": ("get", "audiences/{audience_id}"),
    "update_audience": ("put", "audiences/{audience_id}"),
    "patch_audience": ("patch", "audiences/{audience_id}"),
    "delete_audience": ("delete", "audiences/{audience_id}"),
    "preview_audience": ("post", "audiences/preview"),
}
# Statuses every operation answers; a body adds the second set.
ALWAYS = {"400", "401", "403", "404", "429", "470", "471", "500", "503"}
WITH_BODY = {"411", "413", "422"}
CONDITION = {"$ref": "#/components/schemas/Condition"}


@pytest.fixture(scope="module")
def schema(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The schema as ``manage.py spectacular --validate --fail-on-warn`` writes it."""
    path: Path = tmp_path_factory.mktemp("schema") / "schema.yaml"
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(path))
    return dict(yaml.safe_load(path.read_text()))


def operations(schema: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in schema["paths"].items():
        for method, operation in item.items():
            yield method, path.removeprefix(PREFIX), operation


def walk(node: Any, where: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    """Every JSON object in ``node``, with where it is."""
    if isinstance(node, dict):
        yield where, node
        for key, value in node.items():
            yield from walk(value, f"{where}/{key}")
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from walk(value, f"{where}/{index}")


def test_the_schema_validates_without_warnings_and_has_every_operation(
    schema: dict[str, Any],
) -> None:
    validate(schema)  # openapi-spec-validator, beside drf-spectacular's own --validate

    assert {op["operationId"]: (m, p) for m, p, op in operations(schema)} == OPERATIONS


def test_every_operation_has_a_summary_examples_and_its_statuses(
    schema: dict[str, Any],
) -> None:
    for method, _path, operation in operations(schema):
        where = operation["operationId"]
        codes = set(operation["responses"])
        assert operation["summary"], where
        assert codes >= ALWAYS, where
        body = operation.get("requestBody")
        if body is not None:
            assert codes >= WITH_BODY, where
            assert body["content"]["application/json"]["examples"], where
        success = min(code for code in codes if code.startswith("2"))
        for content in operation["responses"][success].get("content", {}).values():
            assert content.get("examples"), where
        for code in codes - {success}:
            content = operation["responses"][code]["content"]["application/json"]
            assert content["examples"], (where, code)
        for parameter in operation["parameters"]:
            if parameter["in"] == "path":
                assert parameter["examples"], (where, parameter["name"])
        if method != "get":
            continue
        query = {p["name"] for p in operation["parameters"] if p["in"] == "query"}
        assert ("422" in codes) == bool(query), where
    refusals = {op["operationId"] for _m, _p, op in operations(schema) if "405" in op["responses"]}
    assert refusals == {
        "update_members_group",
        "patch_members_group",
        "delete_members_group",
        "add_group_members",
        "remove_group_members",
        "update_audience",
        "patch_audience",
        "delete_audience",
    }
    group = schema["paths"][PREFIX + "members_groups/{members_group_id}"]["get"]
    assert "Retry-After" in group["responses"]["429"]["headers"]
    assert "Retry-After" in group["responses"]["503"]["headers"]


def test_every_example_is_valid_against_its_schema(schema: dict[str, Any]) -> None:
    checked = 0
    for where, node in walk(schema["paths"]):
        if "schema" not in node or "examples" not in node:
            continue
        # Beside the components, which its references point into.
        validator = OAS30Validator({**node["schema"], "components": schema["components"]})
        for name, example in node["examples"].items():
            errors = [error.message for error in validator.iter_errors(example["value"])]
            assert not errors, (where, name, errors)
            checked += 1
    assert checked > 300


def test_each_enum_is_one_component_and_every_id_has_one_name(schema: dict[str, Any]) -> None:
    components = schema["components"]["schemas"]
    enums = {name: s for name, s in components.items() if "enum" in s}
    values = Counter(frozenset(s["enum"]) - {"", None} for s in enums.values())
    assert [v for v, count in values.items() if count > 1] == []
    inline = [
        where
        for where, node in walk({"paths": schema["paths"], "schemas": components})
        if "enum" in node and where.count("/") != 2  # /schemas/<Name>
    ]
    assert inline == []
    assert "MemberGroup" not in components
    assert {"MembersGroup", "GroupMembership"} <= set(components)
    names = {p["name"] for _m, _p, op in operations(schema) for p in op["parameters"]}
    path_names = {
        p["name"]
        for _m, _p, op in operations(schema)
        for p in op["parameters"]
        if p["in"] == "path"
    }
    assert path_names == {
        "loyalty_club_slug",
        "members_group_id",
        "member_id",
        "audience_id",
        "import_id",
    }
    assert not {"id", "member_pk", "pk"} & names


def test_conditions_are_typed_wherever_they_appear(schema: dict[str, Any]) -> None:
    components = schema["components"]["schemas"]
    leaf = components["ConditionLeaf"]
    node = components["ConditionNode"]

    assert components["Condition"]["oneOf"] == [
        {"$ref": "#/components/schemas/ConditionLeaf"},
        {"$ref": "#/components/schemas/ConditionNode"},
    ]
    assert leaf["required"] == ["type", "field", "operator"]
    assert components[leaf["properties"]["type"]["$ref"].rpartition("/")[2]]["enum"] == [
        "array",
        "string",
        "number",
        "date",
        "boolean",
    ]
    assert node["properties"]["conditions"]["items"] == CONDITION
    assert components["ConditionNodeOperatorEnum"]["enum"] == ["and", "or", "not"]
    # The explanation sends the same tree, every leaf and node with a required matches.
    explained = {"$ref": "#/components/schemas/ExplainedCondition"}
    assert components["ExplainedCondition"]["oneOf"] == [
        {"$ref": "#/components/schemas/ExplainedConditionLeaf"},
        {"$ref": "#/components/schemas/ExplainedConditionNode"},
    ]
    for name, typed in [("ExplainedConditionLeaf", leaf), ("ExplainedConditionNode", node)]:
        assert components[name]["required"] == [*typed["required"], "matches"], name
        assert components[name]["properties"]["matches"]["type"] == "boolean", name
        assert components[name]["properties"].keys() - {"matches"} == typed["properties"].keys()
    assert components["ExplainedConditionNode"]["properties"]["conditions"]["items"] == explained
    assert components["Explain"]["properties"]["conditions"]["items"] == explained
    for name, field in [
        ("MembersGroup", "audience_conditions"),
        ("GroupMembership", "audience_conditions"),
        ("Audience", "conditions"),
    ]:
        assert components[name]["properties"][field]["items"] == CONDITION, name
    for name, field in [
        ("MembersGroupPayload", "audience_conditions"),
        ("PatchedMembersGroupPayload", "audience_conditions"),
        ("AudiencePayload", "conditions"),
        ("PreviewPayload", "conditions"),
    ]:
        assert components[name]["properties"][field]["oneOf"] == [
            {"type": "array", "items": CONDITION},
            CONDITION,
        ], name


def test_list_parameters_are_documented_as_generators_send_them(schema: dict[str, Any]) -> None:
    def parameters(path: str) -> dict[str, dict[str, Any]]:
        get = schema["paths"][PREFIX + path]["get"]
        return {p["name"]: p for p in get["parameters"]}

    members = parameters("members")
    group_members = parameters("members_groups/{members_group_id}/members")

    assert {"page_no", "per_page", "sort_by[]", "sort_directions[]"} <= set(members)
    assert {"ids[]", "name", "type", "automatic", "system", "search"} <= set(
        parameters("members_groups")
    )
    assert {"ids[]", "email", "msisdn", "properties", "members_group_ids[]", "search"} <= set(
        members
    )
    assert {"after_id", "page_no", "per_page", "properties"} <= set(group_members)
    # Bounded like the ids it pages over (from 0, which starts the walk).
    assert group_members["after_id"]["schema"] == {
        "type": "integer",
        "minimum": 0,
        "maximum": MAX_ID,
    }
    # A default would be sent by generated clients, and page_no with after_id is refused.
    assert "default" not in group_members["page_no"]["schema"]
    properties = group_members["properties"]
    assert (properties["style"], properties["explode"]) == ("form", True)
    assert properties["schema"] == {"$ref": "#/components/schemas/PropertiesFilter"}
    assert "properties[first_name]=Astrid" in properties["description"]
    assert members["sort_by[]"]["schema"]["items"] == {
        "$ref": "#/components/schemas/MembersSortByEnum"
    }
    assert group_members["sort_by[]"] == members["sort_by[]"]


def test_the_bulk_removal_documents_its_delete_body(schema: dict[str, Any]) -> None:
    remove = schema["paths"][PREFIX + "members_groups/{members_group_id}/members"]["delete"]

    assert remove["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/BulkIdentifiers"
    }
    assert set(remove["responses"]["200"]["content"]["application/json"]["schema"].values()) == {
        "#/components/schemas/BulkRemoveReport"
    }


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
