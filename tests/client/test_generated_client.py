"""A client generated from the live schema works the first time: an integrator's whole flow.

openapi-python-client generates a Python client from ``/v3/schema/`` as a live server
serves it, into a temporary folder; the flow then calls every operation through that
client only: lists by page and by ``after_id``, a ``properties`` filter, conditions built
from the typed models, a 422 parsed into its model, the import poll. Every answer must be
one the schema declares (undeclared statuses raise) and parse into its model with no
undeclared field, so any disagreement between the schema and the server fails here.
"""

from __future__ import annotations

import importlib
import pkgutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from http import HTTPStatus
from types import ModuleType
from typing import Any

import attrs
import httpx
import pytest
from pytest_django.live_server_helper import LiveServer

from loyalty.permits import ALL_PERMITS
from loyalty.services import create_api_token
from tests.factories import ClubFactory

PACKAGE = "members_groups_client"
USER_AGENT = "generated-client-test/1.0"
PRODUCT = "Members Groups tests"
SLUG = "generated-club"


class Generated:
    """The generated package: its models, and its operations by operationId, noting which
    ones the flow called."""

    def __init__(self, package: ModuleType) -> None:
        self.package = package
        self.models = importlib.import_module(f"{PACKAGE}.models")
        api = importlib.import_module(f"{PACKAGE}.api")
        self.operations = {
            info.name.rpartition(".")[2]: info.name
            for info in pkgutil.walk_packages(api.__path__, f"{PACKAGE}.api.")
            if not info.ispkg
        }
        self.called: set[str] = set()

    def __getattr__(self, operation_id: str) -> Any:
        self.called.add(operation_id)
        return importlib.import_module(self.operations[operation_id])


@pytest.fixture(scope="module")
def generated(
    live_server: LiveServer,
    django_db_setup: None,
    django_db_blocker: Any,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Generated]:
    """The client openapi-python-client generates from the schema the live server serves."""
    folder = tmp_path_factory.mktemp("generated")
    with django_db_blocker.unblock():  # the request middleware reads the database
        schema = httpx.get(f"{live_server.url}/v3/schema/", timeout=60)
    assert schema.status_code == 200
    (folder / "schema.json").write_bytes(schema.content)
    # No formatting hooks: the code runs the same unformatted.
    (folder / "config.yaml").write_text(f"package_name_override: {PACKAGE}\npost_hooks: []\n")
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "openapi_python_client",
            "generate",
            "--path",
            str(folder / "schema.json"),
            "--config",
            str(folder / "config.yaml"),
            "--meta",
            "none",
            "--output-path",
            str(folder / PACKAGE),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    # A warning means some operation or model could not be generated.
    assert run.returncode == 0, run.stdout + run.stderr
    assert "Warning" not in run.stdout + run.stderr, run.stdout + run.stderr
    sys.path.insert(0, str(folder))
    try:
        client = Generated(importlib.import_module(PACKAGE))
        operation_ids = {
            operation["operationId"]
            for item in schema.json()["paths"].values()
            for operation in item.values()
        }
        assert set(client.operations) == operation_ids  # every operation was generated
        yield client
    finally:
        sys.path.remove(str(folder))
        for name in [name for name in sys.modules if name.partition(".")[0] == PACKAGE]:
            del sys.modules[name]


@pytest.fixture
def token(transactional_db: None, settings: Any) -> str:
    settings.API_RATE_LIMIT = "100000/min"
    club = ClubFactory(slug=SLUG, name="Generated Club")
    return create_api_token(club=club, name="generated", permits=ALL_PERMITS)[1]


def undeclared(value: Any, where: str = "body") -> list[str]:
    """Where a parsed answer holds fields its schema does not declare (a model declaring
    fields must have no additional ones; free-form objects, such as properties, may)."""
    if isinstance(value, list):
        return [problem for i, item in enumerate(value) for problem in undeclared(item, where)]
    if not attrs.has(type(value)):
        return []
    declared = [f.name for f in attrs.fields(type(value)) if f.name != "additional_properties"]
    problems = [f"{where}.{key}" for key in value.additional_properties] if declared else []
    for name in declared:
        problems.extend(undeclared(getattr(value, name), f"{where}.{name}"))
    return problems


def answer(response: Any, status: int) -> Any:
    """The parsed body of ``response``, which must have ``status`` and only declared fields."""
    assert response.status_code == HTTPStatus(status), (response.status_code, response.content)
    assert undeclared(response.parsed) == []
    return response.parsed


def test_an_integrator_runs_every_operation_through_the_generated_client(
    generated: Generated, live_server: LiveServer, token: str
) -> None:
    api, m = generated, generated.models
    client = generated.package.AuthenticatedClient(
        base_url=live_server.url,
        token=token,
        auth_header_name="X-Client-Authorization",
        prefix="",
        headers={"X-User-Agent": USER_AGENT, "X-Product-Name": PRODUCT},
        raise_on_unexpected_status=True,
    )
    call: dict[str, Any] = {"client": client, "loyalty_club_slug": SLUG}

    def member(email: str, **properties: Any) -> Any:
        payload = m.MemberPayload(
            email=email, properties=m.MemberPayloadProperties.from_dict(properties)
        )
        return answer(api.create_member.sync_detailed(body=payload, **call), 201)

    astrid = member("Astrid@Gen.example", first_name="Astrid", tier="gold")
    bjorn = member("bjorn@gen.example", first_name="Bjørn", tier="gold")
    other_astrid = member("astrid.2@gen.example", first_name="Astrid", tier="bronze")
    assert astrid.email == "astrid@gen.example"

    # An import, followed until it has run.
    sent = answer(
        api.import_members.sync_detailed(
            body=m.MemberImportPayload(
                operation=m.ImportOperationEnum.CREATE,
                members=[
                    m.ImportedMember(email="kari@gen.example"),
                    m.ImportedMember(email="lars@gen.example"),
                    m.ImportedMember(email="not an email"),
                ],
                import_id="generated-1",
            ),
            **call,
        ),
        202,
    )
    for _poll in range(50):
        state = answer(api.get_member_import.sync_detailed(import_id=sent.import_id, **call), 200)
        if state.status in (m.ImportStatusEnum.DONE, m.ImportStatusEnum.FAILED):
            break
    assert (state.status, state.created, state.rejected) == (m.ImportStatusEnum.DONE, 2, 1)
    assert state.rejected_rows[0].index == 2

    # A properties filter, as the generated client sends it.
    filters = m.PropertiesFilter.from_dict(
        {"properties[first_name]": "Astrid", "properties[tier][]": ["gold", "silver"]}
    )
    found = answer(api.list_members.sync_detailed(properties=filters, **call), 200)
    assert [x.id for x in found.members] == [astrid.id]
    everyone = answer(
        api.list_members.sync_detailed(
            sort_by=[m.MembersSortByEnum.EMAIL],
            sort_directions=[m.SortDirectionEnum.DESC],
            per_page=2,
            **call,
        ),
        200,
    )
    assert everyone.pagination_info.total_count == 5
    assert [x.email for x in everyone.members] == ["lars@gen.example", "kari@gen.example"]

    # One member, read, changed and replaced.
    shown = answer(api.get_member.sync_detailed(member_id=bjorn.id, **call), 200)
    assert shown.properties.additional_properties == {"first_name": "Bjørn", "tier": "gold"}
    patch = m.PatchedMemberPayload(
        properties=m.PatchedMemberPayloadProperties.from_dict({"tier": "silver"})
    )
    patched = answer(api.patch_member.sync_detailed(member_id=bjorn.id, body=patch, **call), 200)
    assert patched.properties["tier"] == "silver"
    replaced = answer(
        api.replace_member.sync_detailed(
            member_id=other_astrid.id,
            body=m.MemberPayload(msisdn="+47 407 69 126"),
            **call,
        ),
        200,
    )
    assert (replaced.email, replaced.msisdn) == (None, "4740769126")

    # A manual group: created, read, updated, filled, walked, emptied.
    red = answer(
        api.create_members_group.sync_detailed(
            body=m.MembersGroupPayload(name="Red", type_="Color"), **call
        ),
        201,
    )
    assert answer(api.get_members_group.sync_detailed(members_group_id=red.id, **call), 200).name
    answer(
        api.update_members_group.sync_detailed(
            members_group_id=red.id,
            body=m.MembersGroupPayload(name="Red", description="Lorem ipsum"),
            **call,
        ),
        200,
    )
    red = answer(
        api.patch_members_group.sync_detailed(
            members_group_id=red.id, body=m.PatchedMembersGroupPayload(name="Red team"), **call
        ),
        200,
    )
    assert (red.name, red.description, red.automatic) == ("Red team", "Lorem ipsum", False)
    emails = ["astrid@gen.example", "bjorn@gen.example", "kari@gen.example", "lars@gen.example"]
    added = answer(
        api.add_group_members.sync_detailed(
            members_group_id=red.id,
            body=m.BulkIdentifiers(
                identifier_type=m.MemberIdentifierTypeEnum.EMAIL,
                identifiers=[*emails, "nobody@gen.example", "x"],
            ),
            **call,
        ),
        200,
    )
    assert (added.added, added.not_found, added.invalid) == (4, ["nobody@gen.example"], ["x"])
    assert added.members_group.members_count == 4

    page_two = answer(
        api.list_group_members.sync_detailed(
            members_group_id=red.id, page_no=2, per_page=3, **call
        ),
        200,
    )
    assert (len(page_two.members), page_two.pagination_info.current_page) == (1, 2)
    walked, after_id = [], 0
    while after_id is not None:
        page = answer(
            api.list_group_members.sync_detailed(
                members_group_id=red.id, after_id=after_id, per_page=3, **call
            ),
            200,
        )
        walked.extend(x.id for x in page.members)
        after_id = page.pagination_info.next_after_id
    assert len(walked) == 4
    assert walked == sorted(walked)
    golden = answer(
        api.list_group_members.sync_detailed(
            members_group_id=red.id,
            properties=m.PropertiesFilter.from_dict({"properties[tier]": "gold"}),
            **call,
        ),
        200,
    )
    assert [x.id for x in golden.members] == [astrid.id]

    csv = answer(api.export_group_members_csv.sync_detailed(members_group_id=red.id, **call), 200)
    assert csv.splitlines()[0] == "id,email,msisdn,joined_at,properties"
    assert len(csv.splitlines()) == 5

    groups = answer(api.list_member_groups.sync_detailed(member_id=astrid.id, **call), 200)
    assert {g.name for g in groups.members_groups} == {"All members", "Red team"}
    assert all(g.joined_source == "api" or g.system for g in groups.members_groups)

    removed = answer(
        api.remove_group_members.sync_detailed(
            members_group_id=red.id,
            body=m.BulkIdentifiers(
                identifier_type=m.MemberIdentifierTypeEnum.ID, identifiers=[bjorn.id]
            ),
            **call,
        ),
        200,
    )
    assert (removed.removed, removed.members_group.members_count) == (1, 3)

    # Conditions built from the typed models: Astrids, or members of the red group.
    def leaf(type_: Any, field: str, operator: Any, value: Any) -> Any:
        return m.ConditionLeaf(
            condition_group=m.ConditionGroupEnum.MEMBER_PROPERTIES,
            type_=type_,
            field=field,
            operator=operator,
            value=value,
        )

    rule = m.ConditionNode(
        operator=m.ConditionNodeOperatorEnum.OR,
        conditions=[
            leaf(m.ConditionTypeEnum.STRING, "first_name", m.ConditionOperatorEnum.EQ, "Astrid"),
            leaf(
                m.ConditionTypeEnum.ARRAY,
                "members_group_ids",
                m.ConditionOperatorEnum.ANY,
                [red.id],
            ),
        ],
    )
    automatic = answer(
        api.create_members_group.sync_detailed(
            body=m.MembersGroupPayload(name="Astrids or red", audience_conditions=[rule]), **call
        ),
        201,
    )
    automatic = answer(
        api.get_members_group.sync_detailed(members_group_id=automatic.id, **call), 200
    )
    # The red group's three, one of them Astrid (the other Astrid was replaced without).
    assert (automatic.automatic, automatic.members_count) == (True, 3)
    node = automatic.audience_conditions[0]
    assert isinstance(node, m.ConditionNode)
    assert [type(c) for c in node.conditions] == [m.ConditionLeaf, m.ConditionLeaf]
    assert node.conditions[1].value == [red.id]

    refused = answer(
        api.add_group_members.sync_detailed(
            members_group_id=automatic.id,
            body=m.BulkIdentifiers(identifier_type=m.MemberIdentifierTypeEnum.ID, identifiers=[1]),
            **call,
        ),
        405,
    )
    assert isinstance(refused, m.Error)

    preview = answer(
        api.preview_audience.sync_detailed(
            body=m.PreviewPayload(
                conditions=[
                    leaf(m.ConditionTypeEnum.STRING, "tier", m.ConditionOperatorEnum.EQ, "gold")
                ],
                members_group_id=automatic.id,
            ),
            **call,
        ),
        200,
    )
    assert (preview.count, preview.member_ids) == (1, [astrid.id])
    assert (preview.impact.joining, preview.impact.leaving) == (0, 2)

    explained = answer(
        api.explain_group_membership.sync_detailed(
            members_group_id=automatic.id, member_id=astrid.id, **call
        ),
        200,
    )
    assert (explained.is_member, explained.matches) == (True, True)
    # The rule's node and its leaves, each typed and marked: Astrid is an Astrid in red.
    explained_node = explained.conditions[0]
    assert isinstance(explained_node, m.ExplainedConditionNode)
    assert (explained_node.operator, explained_node.matches) == (
        m.ConditionNodeOperatorEnum.OR,
        True,
    )
    assert [(type(c), c.field, c.matches) for c in explained_node.conditions] == [
        (m.ExplainedConditionLeaf, "first_name", True),
        (m.ExplainedConditionLeaf, "members_group_ids", True),
    ]

    events = answer(
        api.list_group_events.sync_detailed(members_group_id=red.id, kind=m.KindEnum.LEFT, **call),
        200,
    )
    assert [(e.member_id, e.source) for e in events.events] == [(bjorn.id, m.SourceEnum.API)]
    stats = answer(
        api.get_group_stats.sync_detailed(
            members_group_id=red.id, interval=m.IntervalEnum.WEEK, **call
        ),
        200,
    )
    assert stats.stats[-1].size_at_end == 3

    listed = answer(
        api.list_members_groups.sync_detailed(
            system=False, sort_by=[m.MembersGroupsSortByEnum.NAME], **call
        ),
        200,
    )
    assert [g.name for g in listed.members_groups] == ["Astrids or red", "Red team"]

    # Audiences.
    audience = answer(
        api.create_audience.sync_detailed(
            body=m.AudiencePayload(
                name="Gold",
                conditions=[
                    leaf(m.ConditionTypeEnum.STRING, "tier", m.ConditionOperatorEnum.EQ, "gold")
                ],
            ),
            **call,
        ),
        201,
    )
    assert isinstance(audience.conditions[0], m.ConditionLeaf)
    audiences = answer(api.list_audiences.sync_detailed(search="gold", **call), 200).audiences
    assert [a.id for a in audiences] == [audience.id]
    answer(api.get_audience.sync_detailed(audience_id=audience.id, **call), 200)
    answer(
        api.update_audience.sync_detailed(
            audience_id=audience.id, body=m.AudiencePayload(name="Golden"), **call
        ),
        200,
    )
    renamed = answer(
        api.patch_audience.sync_detailed(
            audience_id=audience.id, body=m.PatchedAudiencePayload(name="Gold again"), **call
        ),
        200,
    )
    assert renamed.name == "Gold again"
    answer(api.delete_audience.sync_detailed(audience_id=audience.id, **call), 204)

    # A refusal, parsed into its model.
    invalid = answer(
        api.create_members_group.sync_detailed(body=m.MembersGroupPayload(name="x" * 201), **call),
        422,
    )
    assert isinstance(invalid, m.InvalidParameters)
    assert invalid.details["name"] == [{"error": "max_length", "options": {"count": 200}}]

    answer(api.delete_members_group.sync_detailed(members_group_id=automatic.id, **call), 204)
    answer(api.delete_members_group.sync_detailed(members_group_id=red.id, **call), 204)
    answer(api.delete_member.sync_detailed(member_id=bjorn.id, **call), 204)

    assert api.called == set(api.operations)


def raise_on_client_header_status(response: httpx.Response) -> None:
    """docs/api.md's hook: 470/471 raised with their message, before the generated code
    turns the status into an HTTPStatus (which has neither)."""
    if response.status_code in (470, 471):
        response.read()
        raise ClientHeaderRefused(response.status_code, response.json()["error"])


class ClientHeaderRefused(Exception):
    pass


def test_the_platform_codes_reach_a_generated_client_through_a_response_hook(
    generated: Generated, live_server: LiveServer, token: str
) -> None:
    def client(**options: Any) -> Any:
        return generated.package.AuthenticatedClient(
            base_url=live_server.url,
            token=token,
            auth_header_name="X-Client-Authorization",
            prefix="",
            headers={"X-User-Agent": USER_AGENT},  # no X-Product-Name
            **options,
        )

    list_groups: Callable[..., Any] = generated.list_members_groups.sync_detailed

    with pytest.raises(ValueError, match="470 is not a valid HTTPStatus"):
        list_groups(client=client(), loyalty_club_slug=SLUG)
    hooked = client(httpx_args={"event_hooks": {"response": [raise_on_client_header_status]}})
    with pytest.raises(ClientHeaderRefused) as refused:
        list_groups(client=hooked, loyalty_club_slug=SLUG)
    assert refused.value.args == (470, "The X-Product-Name header is required.")
