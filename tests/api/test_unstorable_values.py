"""What PostgreSQL cannot store in text or jsonb, refused in every JSON value of a payload.

Half of a UTF-16 surrogate pair (JSON's "\\ud800") and a number too large for a float (JSON's
1e400, which decodes to infinity) were each a 500, a bulk change's only after it committed;
NUL was already refused everywhere but in bulk identifiers. (Member imports reject such rows
on their own.) The bodies are raw JSON: Python's json.dumps escapes neither as a client may.
"""

from __future__ import annotations

import pytest

from audiences import services as audience_services
from audiences.models import Audience
from groups import services as group_services
from groups.models import MembersGroup, MembershipEvent
from loyalty.models import Club
from members.models import Member
from tests.api_fixtures import ClubClient
from tests.factories import GroupFactory, MemberFactory

pytestmark = pytest.mark.django_db

JSON = "application/json"
SURROGATE = [{"error": "surrogate_characters_not_allowed", "options": {}}]
NOT_FINITE = [{"error": "invalid", "options": {}}]
NUL = [{"error": "null_characters_not_allowed", "options": {}}]

MEMBER_VALUES = [
    ('"properties": {"x": 1e400}', "properties", NOT_FINITE),
    ('"properties": {"x": -1e400}', "properties", NOT_FINITE),
    ('"properties": {"x": [1, [2.5, 1e400]]}', "properties", NOT_FINITE),
    ('"properties": {"x": "a\\ud800"}', "properties", SURROGATE),
    ('"properties": {"\\udc00": 1}', "properties", SURROGATE),
    ('"properties": {"x": [["\\ud800"]]}', "properties", SURROGATE),
    ('"consents": {"\\ud800": true}', "consents", SURROGATE),
]


def _refusal(field: str, leaves: object) -> dict[str, object]:
    return {"error": "Invalid parameters", "details": {field: leaves}}


@pytest.mark.parametrize(("value", "field", "leaves"), MEMBER_VALUES)
def test_creating_a_member_with_an_unstorable_value_is_refused(
    api: ClubClient, value: str, field: str, leaves: object
) -> None:
    body = '{"email": "ann@example.com", ' + value + "}"

    response = api.generic("POST", "members", body, content_type=JSON)

    assert (response.status_code, response.json()) == (422, _refusal(field, leaves))
    assert not Member.objects.exists()


@pytest.mark.parametrize(("value", "field", "leaves"), MEMBER_VALUES)
def test_updating_a_member_with_an_unstorable_value_is_refused(
    api: ClubClient, club: Club, value: str, field: str, leaves: object
) -> None:
    member = MemberFactory(club=club, properties={"x": 1})

    response = api.generic("PATCH", f"members/{member.pk}", "{" + value + "}", content_type=JSON)

    assert (response.status_code, response.json()) == (422, _refusal(field, leaves))
    member.refresh_from_db()
    assert member.properties == {"x": 1}


def _condition(field: str, value: str) -> str:
    node = f'"condition_group": "member_properties", "type": "string", "field": "{field}"'
    return "[{" + node + ', "operator": "eq", "value": ' + value + "}]"


@pytest.mark.parametrize(
    ("conditions", "leaves"),
    [
        (_condition("first_name", '"\\ud800"'), {"0": {"value": SURROGATE}}),
        (_condition("\\udfff", '"Ann"'), {"0": {"field": SURROGATE}}),
        (
            '[{"operator": "or", "conditions": [{"field": "id"}, {"value": [1, 1e400]}]}]',
            {"0": {"conditions": {"1": {"value": {"1": NOT_FINITE}}}}},
        ),
        ('[{"\\ud800": 1}]', {"0": SURROGATE}),
        # The first place found, with its own error.
        ('[{"field": "x\\u0000", "value": 1e400}]', {"0": {"field": NUL}}),
    ],
)
@pytest.mark.parametrize(
    ("method", "path", "field"),
    [
        ("POST", "audiences/preview", "conditions"),
        ("POST", "audiences", "conditions"),
        ("PUT", "audiences/{audience}", "conditions"),
        ("POST", "members_groups", "audience_conditions"),
        ("PATCH", "members_groups/{group}", "audience_conditions"),
    ],
)
def test_conditions_with_an_unstorable_string_are_refused(
    api: ClubClient,
    club: Club,
    method: str,
    path: str,
    field: str,
    conditions: str,
    leaves: object,
) -> None:
    audience = audience_services.create_audience(club=club, name="Gold", conditions=[])
    group = GroupFactory(club=club, name="Red")
    audiences_before, groups_before = Audience.objects.count(), MembersGroup.objects.count()
    url = path.format(audience=audience.pk, group=group.pk)
    body = '{"' + field + '": ' + conditions + "}"

    response = api.generic(method, url, body, content_type=JSON)

    assert (response.status_code, response.json()) == (422, _refusal(field, leaves))
    assert Audience.objects.count() == audiences_before
    assert Audience.objects.get(pk=audience.pk).conditions == []
    assert MembersGroup.objects.count() == groups_before


@pytest.mark.parametrize(
    ("identifier", "leaves"),
    [('"\\ud800@example.com"', SURROGATE), ('"\\udc00"', SURROGATE), ('"a\\u0000"', NUL)],
)
@pytest.mark.parametrize("method", ["POST", "DELETE"])
def test_a_bulk_change_with_an_unstorable_identifier_is_refused_unmade(
    api: ClubClient, club: Club, method: str, identifier: str, leaves: object
) -> None:
    group = GroupFactory(club=club)
    in_group = MemberFactory(club=club, email="in@example.com")
    MemberFactory(club=club, email="out@example.com")
    group_services.add_member_ids(group=group, member_ids=[in_group.pk], source="api")
    events_before = MembershipEvent.objects.count()
    body = '{"identifier_type": "email", "identifiers": ["in@example.com", "out@example.com", '

    response = api.generic(
        method, f"members_groups/{group.pk}/members", body + identifier + "]}", content_type=JSON
    )

    assert (response.status_code, response.json()) == (422, _refusal("identifiers", {"2": leaves}))
    group.refresh_from_db()
    assert group.members_count == 1
    assert MembershipEvent.objects.count() == events_before
