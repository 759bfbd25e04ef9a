"""Schemathesis fuzzes every operation of the generated OpenAPI schema, with every check.

In tests/postgres so that it runs once per `make test` (it takes minutes); what it found is
pinned down for both databases in tests/api/test_fuzzing_findings.py.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections, transaction
from drf_spectacular.generators import SchemaGenerator
from drf_spectacular.renderers import OpenApiJsonRenderer
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from schemathesis.core.parameters import ParameterLocation

from audiences.services import create_audience
from groups import services as group_services
from loyalty.permits import ALL_PERMITS
from loyalty.services import create_api_token
from members import import_services
from tests.factories import ClubFactory, MemberFactory
from tests.helpers import cond

pytestmark = pytest.mark.django_db

SLUG = "fuzz-club"
EXAMPLES = 100
APPLICATION = get_wsgi_application()

# The schema /v3/schema/ serves, generated here: serving it at collection would need the
# database, which the request middleware touches.
schema = schemathesis.openapi.from_dict(
    json.loads(OpenApiJsonRenderer().render(SchemaGenerator().get_schema(public=True))),
    config=schemathesis.Config.from_dict(
        {
            "parameters": {"path.loyalty_club_slug": SLUG},
            "generation": {"max-examples": EXAMPLES, "mode": "all"},
            "checks": {
                "positive_data_acceptance": {
                    "expected-statuses": ["2xx", "401", "403", "404", "405", "409", "422", "429"]
                }
            },
        }
    ),
)
schema.app = APPLICATION

# The ids of the seeded objects, by path parameter (one name per kind of object), for the
# running test (see ``world``).
REAL_IDS: dict[str, list[Any]] = {}


@schema.hook
def flatmap_case(context: Any, case: Any) -> Any:
    """Point a valid generated id at a seeded object some of the time, so that its code runs.

    A case generated to break its path is left as it is: a real id would make it valid.
    """
    if case.meta is not None and case.meta.is_negative_at(ParameterLocation.PATH):
        return st.just(case)
    choices = {}
    for name, value in case.path_parameters.items():
        choices[name] = st.sampled_from([value, *REAL_IDS.get(name, [])])

    def pointed(path_parameters: dict[str, Any]) -> Any:
        case.path_parameters = path_parameters
        return case

    return st.fixed_dictionaries(choices).map(pointed)


@pytest.fixture
def same_connection() -> Iterator[None]:
    """Let the WSGI application share the test's connection, as Django's test client does."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


@pytest.fixture
def world(db: None, settings: Any, same_connection: None) -> dict[str, str]:
    settings.API_RATE_LIMIT = "1000000/min"
    club = ClubFactory(slug=SLUG, name="Fuzz Club")
    ClubFactory(slug="other-fuzz-club", name="Other")
    members = [
        MemberFactory(club=club, email=f"m{i}@fuzz.example", msisdn=f"474000000{i}")
        for i in range(5)
    ]
    manual = group_services.create_group(club=club, name="Manual", type="Color")
    group_services.add_member_ids(
        group=manual, member_ids=[m.pk for m in members[:3]], source="api"
    )
    automatic = group_services.create_group(
        club=club,
        name="Automatic",
        audience_conditions=[cond("string", "email", "match", "@fuzz.")],
    )
    audience = create_audience(club=club, name="Spare", conditions=[])
    member_import = import_services.create_import(
        club=club,
        operation="create",
        members=[{"email": "new@fuzz.example"}, {"email": "not an email"}],
        member_identifier_type="email",
        multi_values_update_mode="replace",
        import_id="seeded-import",
    )
    import_services.run_import(import_pk=member_import.pk)
    group_ids = list(club.membersgroup_set.values_list("pk", flat=True))
    member_ids = [m.pk for m in members]
    audience_ids = [audience.pk, manual.audience_id, automatic.audience_id]
    REAL_IDS.clear()
    REAL_IDS.update(
        {
            "members_group_id": group_ids,
            "member_id": member_ids,
            "audience_id": audience_ids,
            "import_id": ["seeded-import"],
        }
    )
    _token, raw = create_api_token(club=club, name="fuzz", permits=ALL_PERMITS)
    return {
        "X-Client-Authorization": raw,
        "X-User-Agent": "fuzz/1.0",
        "X-Product-Name": "Schema fuzzing",
    }


@pytest.fixture(scope="module")
def tally(request: pytest.FixtureRequest) -> Iterator[Counter[str]]:
    """Examples run per operation; the totals go to the terminal once the module is done."""
    counts: Counter[str] = Counter()
    yield counts
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    if reporter is not None and capture is not None and counts:
        with capture.global_and_fixture_disabled():
            reporter.write_line(
                f"\nschema fuzzing: {len(counts)} operations, {counts.total()} examples "
                f"(fewest {min(counts.values())} per operation)"
            )


@pytest.fixture
def examples(request: pytest.FixtureRequest, tally: Counter[str]) -> Iterator[list[int]]:
    """Count one operation's examples: each operation must get at least ``EXAMPLES``."""
    count = [0]
    yield count
    label = request.node.name.partition("[")[2].rstrip("]")
    tally[label] = count[0]
    assert count[0] >= EXAMPLES, f"{label}: only {count[0]} examples"


@schema.parametrize()
# The fixture's club is reset after every example by rolling its savepoint back.
@settings(max_examples=EXAMPLES, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_every_operation_conforms_to_its_schema(
    case: Any, world: dict[str, str], examples: list[int]
) -> None:
    # Each example runs in a savepoint rolled back after it, so that every example starts
    # from the seeded club.
    with transaction.atomic():
        case.call_and_validate(headers=world)
        transaction.set_rollback(True)
    examples[0] += 1
