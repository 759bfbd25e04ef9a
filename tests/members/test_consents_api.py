"""Consents through the members API: the import's rule, so conditions match them alike."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from loyalty.models import Club
from members.models import Member
from tests.factories import MemberFactory

pytestmark = pytest.mark.django_db

STAMPED = {"status": True, "updated_at": "2024-05-01T10:00:00+02:00"}


def stamped_between(consent: dict[str, Any], before: datetime, after: datetime) -> bool:
    return before <= datetime.fromisoformat(consent["updated_at"]) <= after


def test_a_boolean_consent_is_stored_with_its_status_and_the_time_of_the_request(
    api: APIClient, club: Club
) -> None:
    before = timezone.now()
    response = api.post(
        "members", {"email": "ann@example.com", "consents": {"news": True, "sms": False}}
    )
    after = timezone.now()

    assert response.status_code == 201, response.json()
    consents = response.json()["consents"]
    assert set(consents) == {"news", "sms"}
    assert consents["news"]["status"] is True
    assert consents["sms"]["status"] is False
    assert all(set(c) == {"status", "updated_at"} for c in consents.values())
    assert all(stamped_between(c, before, after) for c in consents.values())
    assert Member.objects.get().consents == consents


def test_a_consent_object_keeps_its_time_and_one_without_a_time_gets_the_request_time(
    api: APIClient, club: Club
) -> None:
    before = timezone.now()
    response = api.post(
        "members",
        {
            "email": "ann@example.com",
            "consents": {
                "news": STAMPED,
                "sms": {"status": False},
                "push": {"status": True, "updated_at": None},
            },
        },
    )
    after = timezone.now()

    assert response.status_code == 201, response.json()
    consents = response.json()["consents"]
    assert consents["news"] == STAMPED
    assert consents["sms"]["status"] is False
    assert consents["push"]["status"] is True
    assert stamped_between(consents["sms"], before, after)
    assert stamped_between(consents["push"], before, after)


def test_patch_merges_the_consents_sent_and_put_replaces_them_normalised(
    api: APIClient, club: Club
) -> None:
    sms = {"status": True, "updated_at": "2024-01-01"}
    member = MemberFactory(club=club, consents={"news": STAMPED, "sms": sms, "post": STAMPED})

    patched = api.patch(f"members/{member.pk}", {"consents": {"news": False, "post": None}})
    put = api.put(f"members/{member.pk}", {"email": member.email, "consents": {"push": True}})

    assert patched.status_code == 200, patched.json()
    assert sorted(patched.json()["consents"]) == ["news", "sms"]
    assert patched.json()["consents"]["news"]["status"] is False
    assert patched.json()["consents"]["sms"] == sms
    assert put.status_code == 200, put.json()
    assert list(put.json()["consents"]) == ["push"]
    assert put.json()["consents"]["push"]["status"] is True
    member.refresh_from_db()
    assert member.consents == put.json()["consents"]


def test_a_null_consent_is_left_out_as_an_import_removes_it(api: APIClient, club: Club) -> None:
    member = MemberFactory(club=club, consents={"news": STAMPED})

    created = api.post(
        "members", {"email": "bob@example.com", "consents": {"news": None, "sms": STAMPED}}
    )
    patched = api.patch(f"members/{member.pk}", {"consents": {"news": None}})

    assert created.status_code == 201, created.json()
    assert created.json()["consents"] == {"sms": STAMPED}
    assert patched.status_code == 200, patched.json()
    assert patched.json()["consents"] == {}


INVALID = [{"error": "invalid", "options": {}}]


@pytest.mark.parametrize(
    ("consents", "details"),
    [
        ({"x": "yes"}, {"x": INVALID}),
        ({"x": 1}, {"x": INVALID}),
        ({"x": {"status": "maybe"}}, {"x": INVALID}),
        ({"x": {"status": None}}, {"x": INVALID}),
        ({"x": {"updated_at": "2024-01-01T00:00:00Z"}}, {"x": INVALID}),
        ({"x": {"status": True, "by": "crm"}}, {"x": INVALID}),
        ({"x": []}, {"x": INVALID}),
        ({"x": {"status": True, "updated_at": "not a date"}}, {"x": {"updated_at": INVALID}}),
        (
            {"x": {"status": True, "updated_at": "2024-13-01T00:00:00"}},
            {"x": {"updated_at": INVALID}},
        ),
        ({"x": {"status": True, "updated_at": 1714550400}}, {"x": {"updated_at": INVALID}}),
        (
            {"ok": True, "x": {"status": 1}, "y": {"status": False, "updated_at": ""}},
            {"x": INVALID, "y": {"updated_at": INVALID}},
        ),
    ],
)
def test_an_invalid_consent_is_422_naming_it_and_nothing_is_written(
    api: APIClient, club: Club, consents: dict[str, Any], details: dict[str, Any]
) -> None:
    member = MemberFactory(club=club, consents={"news": STAMPED})
    expected = {"error": "Invalid parameters", "details": {"consents": details}}

    created = api.post("members", {"email": "bob@example.com", "consents": consents})
    patched = api.patch(f"members/{member.pk}", {"consents": consents})

    assert (created.status_code, created.json()) == (422, expected)
    assert (patched.status_code, patched.json()) == (422, expected)
    assert list(Member.objects.values_list("pk", flat=True)) == [member.pk]
    member.refresh_from_db()
    assert member.consents == {"news": STAMPED}


def test_a_consent_condition_matches_a_member_of_the_api_like_one_of_an_import(
    api: APIClient, club: Club, django_capture_on_commit_callbacks: Any
) -> None:
    created = api.post("members", {"email": "ann@example.com", "consents": {"news": True}})
    with django_capture_on_commit_callbacks(execute=True):
        imported = api.post(
            "members/imports",
            {
                "operation": "create",
                "members": [{"email": "bob@example.com", "consents": {"news": True}}],
            },
        )
    refused = MemberFactory(club=club, consents={})
    api.patch(f"members/{refused.pk}", {"consents": {"news": False}})

    def preview(value: bool) -> list[int]:
        condition = {
            "condition_group": "consents",
            "type": "boolean",
            "field": "consents.news",
            "operator": "eq",
            "value": value,
        }
        response = api.post("audiences/preview", {"conditions": [condition]})
        assert response.status_code == 200, response.json()
        return list(response.json()["member_ids"])

    assert created.status_code == 201, created.json()
    assert imported.status_code == 202, imported.json()
    bob = Member.objects.get(email="bob@example.com")
    ann = created.json()["id"]
    assert set(Member.objects.get(pk=ann).consents["news"]) == set(bob.consents["news"])
    assert preview(True) == sorted([ann, bob.pk])
    assert preview(False) == [refused.pk]
