"""The member imports API: answered at once, run in the background, followed by polling."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest
from django.core.management import call_command
from django_tasks_db.models import DBTaskResult
from rest_framework.test import APIClient

from groups.models import MembersGroup, MembershipEvent
from loyalty import permits
from loyalty.models import Club
from members import import_services
from members.models import Member, MemberImport
from members.tasks import run_import_task
from tests.factories import MemberFactory

pytestmark = pytest.mark.django_db

IMPORT_KEYS = {
    "import_id",
    "request_number",
    "status",
    "operation",
    "member_identifier_type",
    "multi_values_update_mode",
    "created",
    "updated",
    "unchanged",
    "rejected",
    "rejected_rows",
    "created_at",
    "started_at",
    "finished_at",
    "error",
}


def payload(*members: dict[str, Any], **fields: Any) -> dict[str, Any]:
    return {
        "import_id": "crm-1",
        "operation": "create",
        "member_identifier_type": "email",
        "multi_values_update_mode": "replace",
        "members": list(members),
        **fields,
    }


@pytest.fixture
def run_on_commit(django_capture_on_commit_callbacks: Any) -> Callable[..., Any]:
    """Send a request and run what it enqueued on commit (the ImmediateBackend runs it)."""

    def send(client: APIClient, method: str, path: str, data: Any = None) -> Any:
        with django_capture_on_commit_callbacks(execute=True):
            return getattr(client, method)(path, data)

    return send


def test_an_import_is_answered_202_at_once_queued_and_runs_only_after_commit(
    api: APIClient, club: Club, django_capture_on_commit_callbacks: Any
) -> None:
    with django_capture_on_commit_callbacks() as callbacks:
        response = api.post(
            "members/imports", payload({"email": "ann@example.com"}, request_number=7)
        )

    assert response.status_code == 202
    body = response.json()
    assert set(body) == IMPORT_KEYS
    assert {key: body[key] for key in IMPORT_KEYS - {"created_at"}} == {
        "import_id": "crm-1",
        "request_number": 7,
        "status": "queued",
        "operation": "create",
        "member_identifier_type": "email",
        "multi_values_update_mode": "replace",
        "created": 0,
        "updated": 0,
        "unchanged": 0,
        "rejected": 0,
        "rejected_rows": [],
        "started_at": None,
        "finished_at": None,
        "error": None,
    }
    assert body["created_at"].endswith("Z")
    assert len(callbacks) == 1
    assert not Member.objects.filter(club=club).exists()
    assert api.get("members/imports/crm-1").json()["status"] == "queued"


def test_a_created_import_runs_to_done_with_its_counts_and_rejected_rows(
    api: APIClient, club: Club, all_members: MembersGroup, run_on_commit: Callable[..., Any]
) -> None:
    bob = MemberFactory(club=club, email="bob@example.com")
    rows = [
        {"email": "Ann@Example.com", "properties": {"first_name": "Ann"}, "subunit_ids": [1]},
        {"email": "bob@example.com"},
        {"msisdn": "+47 407 69 126", "email": "cid@example.com"},
        {"email": "not an email"},
    ]

    run_on_commit(api, "post", "members/imports", payload(*rows))
    response = api.get("members/imports/crm-1")

    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "done"
    assert (body["created"], body["updated"], body["unchanged"], body["rejected"]) == (2, 0, 0, 2)
    assert body["rejected_rows"] == [
        {
            "index": 1,
            "member": rows[1],
            "reason": f"a member with this email already exists (id {bob.pk})",
        },
        {
            "index": 3,
            "member": rows[3],
            "reason": "email 'not an email' is not a valid email address",
        },
    ]
    assert body["started_at"] <= body["finished_at"]
    assert body["error"] is None
    ann = Member.objects.get(club=club, email="ann@example.com")
    assert (ann.properties, ann.subunit_ids) == ({"first_name": "Ann"}, [1])
    assert Member.objects.get(club=club, msisdn="4740769126").email == "cid@example.com"
    all_members.refresh_from_db()
    assert all_members.members_count == 3
    event = MembershipEvent.objects.get(group_id=all_members.pk, member_id=ann.pk)
    assert event.actor == "token:tests"


def test_an_update_import_by_id_replaces_arrays_and_counts_rows_that_change_nothing(
    api: APIClient, club: Club, run_on_commit: Callable[..., Any]
) -> None:
    ann = MemberFactory(club=club, email="ann@example.com", favorite_stores=[1, 2])
    bob = MemberFactory(club=club, email="bob@example.com", properties={"tier": "gold"})
    rows = [
        {"id": ann.pk, "favorite_stores": [3]},
        {"id": bob.pk, "properties": {"tier": "gold"}},
        {"email": "cid@example.com"},
    ]

    run_on_commit(
        api,
        "post",
        "members/imports",
        payload(*rows, operation="update", member_identifier_type="id"),
    )

    body = api.get("members/imports/crm-1").json()
    assert (body["updated"], body["unchanged"], body["rejected"]) == (1, 1, 1)
    assert body["rejected_rows"] == [
        {"index": 2, "member": rows[2], "reason": "the row has no id to match by"}
    ]
    ann.refresh_from_db()
    assert ann.favorite_stores == [3]


def test_an_update_import_finds_members_by_the_identifier_type_and_appends_arrays(
    api: APIClient, club: Club, run_on_commit: Callable[..., Any]
) -> None:
    ann = MemberFactory(club=club, email="ann@example.com", msisdn="4740769126", subunit_ids=[1])
    rows = [
        {"msisdn": "+4740769126", "subunit_ids": [2], "sms_status": "enabled"},
        {"msisdn": "4790000000", "sms_status": "enabled"},
    ]

    run_on_commit(
        api,
        "post",
        "members/imports",
        payload(
            *rows,
            operation="update",
            member_identifier_type="msisdn",
            multi_values_update_mode="append",
        ),
    )

    body = api.get("members/imports/crm-1").json()
    assert (body["status"], body["updated"], body["created"], body["rejected"]) == (
        "done",
        1,
        0,
        1,
    )
    assert body["rejected_rows"] == [
        {"index": 1, "member": rows[1], "reason": "no member with this msisdn"}
    ]
    ann.refresh_from_db()
    assert (ann.subunit_ids, ann.sms_status) == ([1, 2], "enabled")
    assert not Member.objects.filter(club=club, msisdn="4790000000").exists()


def test_without_an_import_id_one_is_made_up_and_can_be_polled(
    api: APIClient, run_on_commit: Callable[..., Any]
) -> None:
    data = payload({"email": "ann@example.com"})
    del data["import_id"]

    response = run_on_commit(api, "post", "members/imports", data)

    import_id = response.json()["import_id"]
    assert re.fullmatch("[0-9a-f]{32}", import_id)
    assert api.get(f"members/imports/{import_id}").json()["created"] == 1


def test_identifier_type_and_multi_values_mode_default_to_email_and_replace(
    api: APIClient,
) -> None:
    response = api.post(
        "members/imports", {"operation": "create", "members": [{"email": "ann@example.com"}]}
    )

    body = response.json()
    assert (body["member_identifier_type"], body["multi_values_update_mode"]) == (
        "email",
        "replace",
    )


def test_running_the_task_again_imports_nothing_twice(
    api: APIClient, club: Club, all_members: MembersGroup, run_on_commit: Callable[..., Any]
) -> None:
    run_on_commit(api, "post", "members/imports", payload({"email": "ann@example.com"}))
    member_import = MemberImport.objects.get(club=club)

    run_import_task.enqueue(import_pk=member_import.pk)

    body = api.get("members/imports/crm-1").json()
    assert (body["status"], body["created"], body["rejected"]) == ("done", 1, 0)
    assert Member.objects.filter(club=club).count() == 1
    all_members.refresh_from_db()
    assert all_members.members_count == 1


def test_the_members_sent_are_dropped_once_the_import_has_run(
    api: APIClient, club: Club, run_on_commit: Callable[..., Any]
) -> None:
    api.post("members/imports", payload({"email": "ann@example.com"}, import_id="kept"))
    run_on_commit(api, "post", "members/imports", payload({"email": "bob@example.com"}))

    stored = dict(MemberImport.objects.filter(club=club).values_list("import_id", "payload"))
    assert stored == {"kept": [{"email": "ann@example.com"}], "crm-1": []}


def test_a_failing_import_reports_failed_with_a_message_and_no_traceback(
    api: APIClient, run_on_commit: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken_engine(**kwargs: Any) -> None:
        raise RuntimeError('relation "members_member" does not exist')

    monkeypatch.setattr(import_services, "import_members", broken_engine)

    run_on_commit(api, "post", "members/imports", payload({"email": "ann@example.com"}))

    body = api.get("members/imports/crm-1").json()
    assert body["status"] == "failed"
    assert body["error"] == import_services.UNEXPECTED_FAILURE
    assert body["finished_at"] is not None
    assert "members_member" not in str(body)


def test_a_taken_import_id_is_422_but_free_in_another_club(
    api: APIClient, other_club: Club, make_client: Callable[..., APIClient]
) -> None:
    assert api.post("members/imports", payload({"email": "ann@example.com"})).status_code == 202

    again = api.post("members/imports", payload({"email": "bob@example.com"}))

    assert again.status_code == 422
    assert again.json() == {
        "error": "Invalid parameters",
        "details": {"import_id": [{"error": "taken", "options": {"value": "crm-1"}}]},
    }
    other = make_client(other_club).post("members/imports", payload({"email": "ann@example.com"}))
    assert other.status_code == 202


@pytest.mark.parametrize(
    ("changes", "details"),
    [
        (
            {"operation": "upsert"},
            {
                "operation": [
                    {"error": "invalid_choice", "options": {"choices": ["create", "update"]}}
                ]
            },
        ),
        (
            {"member_identifier_type": "phone"},
            {
                "member_identifier_type": [
                    {"error": "invalid_choice", "options": {"choices": ["id", "email", "msisdn"]}}
                ]
            },
        ),
        (
            {"multi_values_update_mode": "merge"},
            {
                "multi_values_update_mode": [
                    {"error": "invalid_choice", "options": {"choices": ["replace", "append"]}}
                ]
            },
        ),
        (
            {"member_identifier_type": "id"},
            {"member_identifier_type": [{"error": "not_allowed_with_create", "options": {}}]},
        ),
        ({"members": []}, {"members": [{"error": "empty", "options": {}}]}),
        (
            {"members": {"email": "a@b.example"}},
            {"members": [{"error": "not_an_array", "options": {}}]},
        ),
        (
            {"members": [{"email": "ann@example.com"}, "bob@example.com", 3]},
            {
                "members": {
                    "1": [{"error": "not_an_object", "options": {}}],
                    "2": [{"error": "not_an_object", "options": {}}],
                }
            },
        ),
        ({"import_id": "has space"}, {"import_id": [{"error": "invalid", "options": {}}]}),
        ({"import_id": "x" * 101}, {"import_id": [{"error": "invalid", "options": {}}]}),
        (
            {"request_number": -1},
            {"request_number": [{"error": "min_value", "options": {"count": 0}}]},
        ),
        (
            {"operation": None, "members": None},
            {
                "operation": [{"error": "null", "options": {}}],
                "members": [{"error": "null", "options": {}}],
            },
        ),
    ],
)
def test_an_invalid_payload_is_422_with_details_and_nothing_stored(
    api: APIClient, changes: dict[str, Any], details: dict[str, Any]
) -> None:
    response = api.post("members/imports", payload({"email": "ann@example.com"}, **changes))

    assert response.status_code == 422
    assert response.json() == {"error": "Invalid parameters", "details": details}
    assert not MemberImport.objects.exists()


def test_operation_and_members_are_required(api: APIClient) -> None:
    response = api.post("members/imports", {})

    assert response.status_code == 422
    assert response.json()["details"] == {
        "operation": [{"error": "required", "options": {}}],
        "members": [{"error": "required", "options": {}}],
    }


def test_more_members_than_the_setting_allows_is_422(api: APIClient, settings: Any) -> None:
    settings.MEMBER_IMPORT_MAX_MEMBERS = 2
    rows = [{"email": f"m{n}@example.com"} for n in range(3)]

    response = api.post("members/imports", payload(*rows))

    assert response.status_code == 422
    assert response.json()["details"] == {
        "members": [{"error": "max_length", "options": {"count": 2}}]
    }
    assert api.post("members/imports", payload(*rows[:2])).status_code == 202


@pytest.mark.parametrize(
    ("method", "path", "permit"),
    [
        ("post", "members/imports", permits.MEMBERS_IMPORTS_CREATE),
        ("get", "members/imports/crm-1", permits.MEMBERS_IMPORTS_SHOW),
    ],
)
def test_each_operation_needs_its_permit_and_a_token(
    club: Club,
    make_client: Callable[..., APIClient],
    client_for: Callable[..., APIClient],
    method: str,
    path: str,
    permit: str,
) -> None:
    import_services.create_import(
        club=club,
        import_id="crm-1",
        operation="create",
        member_identifier_type="email",
        multi_values_update_mode="replace",
        members=[{"email": "ann@example.com"}],
    )
    data = payload({"email": "bob@example.com"}, import_id="crm-2")
    without = make_client(club, [p for p in permits.ALL_PERMITS if p != permit])

    forbidden = getattr(without, method)(path, data)
    anonymous = getattr(client_for(club.slug), method)(path, data)
    allowed = getattr(make_client(club, [permit]), method)(path, data)

    assert forbidden.status_code == 403
    assert forbidden.json() == {"error": f"The token lacks the {permit} permit."}
    assert anonymous.status_code == 401
    assert allowed.status_code in (200, 202)
    assert MemberImport.objects.count() == 1 + (allowed.status_code == 202)


def test_another_clubs_import_and_an_unknown_import_are_404(
    api: APIClient, other_club: Club
) -> None:
    import_services.create_import(
        club=other_club,
        import_id="theirs",
        operation="create",
        member_identifier_type="email",
        multi_values_update_mode="replace",
        members=[{"email": "ann@example.com"}],
    )

    for path in ("members/imports/theirs", "members/imports/unknown", "members/imports/a%20b"):
        response = api.get(path)
        assert response.status_code == 404, path
        assert response.json() == {"error": "Not found"}


# Committed for real: the worker closes its database connection between tasks.
@pytest.mark.django_db(transaction=True)
def test_the_database_backend_and_its_worker_run_an_import(
    club: Club, make_client: Callable[..., APIClient], settings: Any
) -> None:
    settings.TASKS = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend"}}
    api = make_client(club)

    response = api.post("members/imports", payload({"email": "ann@example.com"}))

    assert response.status_code == 202
    assert DBTaskResult.objects.filter(status="READY").count() == 1
    assert api.get("members/imports/crm-1").json()["status"] == "queued"

    call_command("db_worker", "--batch", "--no-startup-delay", "--no-reload", verbosity=0)

    body = api.get("members/imports/crm-1").json()
    assert (body["status"], body["created"]) == ("done", 1)
    assert Member.objects.filter(club=club, email="ann@example.com").exists()
    assert DBTaskResult.objects.get().status == "SUCCESSFUL"
