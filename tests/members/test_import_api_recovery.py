"""Member imports whose worker died, sent again; import ids and rows the API used to refuse
or could not store."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from itertools import count
from typing import Any

import pytest
from django.utils import timezone
from django_tasks_db.models import DBTaskResult

from groups.models import MembersGroup
from loyalty.models import Club
from members import import_services
from members.models import Member, MemberImport
from members.tasks import run_import_task
from tests.api_fixtures import ClubClient
from tests.factories import MemberFactory
from tests.helpers import command_output

pytestmark = pytest.mark.django_db

JSON = "application/json"
STALE_SECONDS = 60
# A number JSON carries but a float cannot: it decodes to infinity.
TOO_LARGE = "__too_large__"


def body(*members: dict[str, Any], **fields: Any) -> str:
    """A raw JSON body: the client's json.dumps cannot write 1e400 (TOO_LARGE stands for it)."""
    data = {
        "import_id": "crm-1",
        "operation": "create",
        "member_identifier_type": "email",
        "multi_values_update_mode": "replace",
        "members": list(members),
        **fields,
    }
    return json.dumps(data).replace(f'"{TOO_LARGE}"', "1e400")


@pytest.fixture
def send(django_capture_on_commit_callbacks: Any) -> Callable[..., Any]:
    """POST an import and run what it enqueued on commit (the ImmediateBackend runs it)."""

    def post(client: ClubClient, data: str) -> Any:
        with django_capture_on_commit_callbacks(execute=True):
            return client.generic("POST", "members/imports", data, content_type=JSON)

    return post


@pytest.fixture(autouse=True)
def small_batches(settings: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    settings.MEMBER_IMPORT_STALE_SECONDS = STALE_SECONDS
    monkeypatch.setattr(import_services, "BATCH_SIZE", 2)


class WorkerKilled(BaseException):
    """The worker's process ends: its transaction is rolled back and none of its code runs
    after it (no ``except Exception``)."""


@contextmanager
def worker_killed_in_batch(batch: int) -> Iterator[None]:
    """Kill the worker in the given batch, once the engine has written its members."""
    engine = import_services.import_members
    batches = count(1)

    def dying(**kwargs: Any) -> Any:
        report = engine(**kwargs)
        if next(batches) == batch:
            raise WorkerKilled
        return report

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(import_services, "import_members", dying)
        yield


def age_heartbeat(club: Club, seconds: int = STALE_SECONDS + 1) -> None:
    MemberImport.objects.filter(club=club).update(
        updated_at=timezone.now() - timedelta(seconds=seconds)
    )


def report(response: Any) -> dict[str, Any]:
    data = response.json()
    return {key: data[key] for key in ("status", "created", "updated", "unchanged", "rejected")}


ROWS = [
    {"email": "ann@example.com", "properties": {"tier": "gold"}},
    {"email": "bob@example.com"},
    {"email": "not an email"},
    {"email": "cid@example.com", "properties": {"points": TOO_LARGE}},
    {"email": "dan@example.com"},
    {"email": "ANN@example.com"},
    {"email": "eve@example.com"},
]


def test_an_import_whose_worker_died_is_finished_by_sending_it_again_once_stale(
    api: ClubClient,
    club: Club,
    other_club: Club,
    all_members: MembersGroup,
    make_client: Callable[..., ClubClient],
    send: Callable[..., Any],
) -> None:
    # Batches of two: the worker dies in the third, after writing dan, before it commits.
    with worker_killed_in_batch(3):
        assert send(api, body(*ROWS)).status_code == 202
    dead = api.get("members/imports/crm-1")
    assert report(dead) == {
        "status": "running",
        "created": 2,
        "updated": 0,
        "unchanged": 0,
        "rejected": 2,
    }
    assert set(Member.objects.filter(club=club).values_list("email", flat=True)) == {
        "ann@example.com",
        "bob@example.com",
    }

    # While its run may be alive, and for other members, the id stays taken.
    assert send(api, body(*ROWS)).status_code == 422
    age_heartbeat(club)
    other = send(api, body(*ROWS[:-1]))
    assert other.status_code == 422
    assert other.json()["details"] == {
        "import_id": [{"error": "taken", "options": {"value": "crm-1"}}]
    }

    again = send(api, body(*ROWS))

    assert again.status_code == 202
    assert report(again) == report(dead)
    resumed = api.get("members/imports/crm-1").json()
    other_api = make_client(other_club)
    send(other_api, body(*ROWS))
    uninterrupted = other_api.get("members/imports/crm-1").json()
    assert report(api.get("members/imports/crm-1")) == {
        "status": "done",
        "created": 4,
        "updated": 0,
        "unchanged": 0,
        "rejected": 3,
    }
    assert resumed["rejected_rows"] == [
        {
            "index": 2,
            "member": ROWS[2],
            "reason": "email 'not an email' is not a valid email address",
        },
        {
            "index": 3,
            "member": {"email": "cid@example.com", "properties": {"points": "Infinity"}},
            "reason": "the row: inf is not a JSON number",
        },
        {"index": 5, "member": ROWS[5], "reason": "duplicate: line 0 already imported this member"},
    ]
    for key in ("status", "created", "updated", "unchanged", "rejected", "rejected_rows"):
        assert resumed[key] == uninterrupted[key], key
    assert resumed["started_at"] == dead.json()["started_at"]
    assert set(Member.objects.filter(club=club).values_list("email", flat=True)) == {
        "ann@example.com",
        "bob@example.com",
        "dan@example.com",
        "eve@example.com",
    }
    all_members.refresh_from_db()
    assert all_members.members_count == 4
    assert MemberImport.objects.get(club=club).payload == []


def test_running_the_task_again_takes_over_a_dead_update_only_once_it_is_stale(
    api: ClubClient, club: Club, send: Callable[..., Any]
) -> None:
    ann = MemberFactory(club=club, email="ann@example.com", subunit_ids=[1])
    for email in ("bob@example.com", "cid@example.com", "dan@example.com"):
        MemberFactory(club=club, email=email)
    rows = [
        {"email": "ann@example.com", "subunit_ids": [2]},
        {"email": "bob@example.com", "properties": {"tier": "gold"}},
        {"email": "cid@example.com", "properties": {"tier": "gold"}},
        {"email": "dan@example.com", "properties": {"tier": "gold"}},
    ]
    data = body(*rows, operation="update", multi_values_update_mode="append")
    with worker_killed_in_batch(2):
        send(api, data)
    member_import = MemberImport.objects.get(club=club)

    # A second run of a live import does nothing.
    run_import_task.enqueue(import_pk=member_import.pk)
    assert report(api.get("members/imports/crm-1"))["updated"] == 2

    age_heartbeat(club)
    run_import_task.enqueue(import_pk=member_import.pk)

    # The rows of the committed batch are not run again: still updated, and appended once.
    assert report(api.get("members/imports/crm-1")) == {
        "status": "done",
        "created": 0,
        "updated": 4,
        "unchanged": 0,
        "rejected": 0,
    }
    ann.refresh_from_db()
    assert ann.subunit_ids == [1, 2]
    assert Member.objects.filter(club=club, properties__tier="gold").count() == 3


def test_a_queued_import_whose_task_was_lost_runs_when_sent_again_once_stale(
    api: ClubClient, club: Club, send: Callable[..., Any], django_capture_on_commit_callbacks: Any
) -> None:
    data = body({"email": "ann@example.com"})
    with django_capture_on_commit_callbacks():
        api.generic("POST", "members/imports", data, content_type=JSON)
    age_heartbeat(club)

    again = send(api, data)

    assert (again.status_code, again.json()["status"]) == (202, "queued")
    assert report(api.get("members/imports/crm-1"))["created"] == 1


def sweep() -> str:
    return command_output("resume_stalled_work")


def test_the_sweep_finishes_imports_whose_worker_died_or_whose_task_was_lost_once_stale(
    api: ClubClient,
    club: Club,
    other_club: Club,
    make_client: Callable[..., ClubClient],
    send: Callable[..., Any],
    django_capture_on_commit_callbacks: Any,
) -> None:
    with worker_killed_in_batch(3):
        send(api, body(*ROWS))
    with django_capture_on_commit_callbacks():
        api.generic("POST", "members/imports", body(*ROWS, import_id="lost"), content_type=JSON)
    other_api = make_client(other_club)
    send(other_api, body(*ROWS))
    uninterrupted = other_api.get("members/imports/crm-1").json()

    # While their runs may be alive, the sweep leaves them.
    assert sweep().startswith("0 import(s) unmoved for 60 s")
    assert report(api.get("members/imports/crm-1"))["status"] == "running"
    assert report(api.get("members/imports/lost"))["status"] == "queued"

    age_heartbeat(club)

    assert sweep() == (
        f"Resumed import 'crm-1' of club {club.slug}.\n"
        f"Resumed import 'lost' of club {club.slug}.\n"
        "2 import(s) unmoved for 60 s, 0 recomputation(s) pending for 900 s.\n"
    )
    resumed = api.get("members/imports/crm-1").json()
    for key in ("status", "created", "updated", "unchanged", "rejected", "rejected_rows"):
        assert resumed[key] == uninterrupted[key], key
    lost = api.get("members/imports/lost").json()
    # The same rows again: the members crm-1 created are refused as existing ones.
    assert (lost["status"], lost["created"], lost["rejected"]) == ("done", 0, 7)
    assert Member.objects.filter(club=club).count() == 4
    assert sweep().startswith("0 import(s) unmoved for 60 s")


def test_a_sweep_while_the_queue_is_backed_up_adds_no_second_run(
    api: ClubClient, club: Club, settings: Any, send: Callable[..., Any]
) -> None:
    with worker_killed_in_batch(2):
        send(api, body(*ROWS))
    # Queued, not run: the database backend without its worker.
    settings.TASKS = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend"}}
    age_heartbeat(club)

    assert sweep().startswith(f"Resumed import 'crm-1' of club {club.slug}.\n")
    assert sweep().startswith("0 import(s)")

    assert DBTaskResult.objects.count() == 1
    # Waiting for its run again, its report as the dead run left it.
    assert report(api.get("members/imports/crm-1")) == {
        "status": "queued",
        "created": 2,
        "updated": 0,
        "unchanged": 0,
        "rejected": 0,
    }


def test_a_null_import_id_is_made_up_like_an_absent_one(
    api: ClubClient, send: Callable[..., Any]
) -> None:
    response = send(api, body({"email": "ann@example.com"}, import_id=None))

    assert response.status_code == 202
    import_id = response.json()["import_id"]
    assert re.fullmatch("[0-9a-f]{32}", import_id)
    assert api.get(f"members/imports/{import_id}").json()["created"] == 1


def test_an_import_id_of_a_dot_or_two_is_422_since_it_cannot_be_polled(
    api: ClubClient, send: Callable[..., Any]
) -> None:
    for import_id in (".", ".."):
        response = send(api, body({"email": "ann@example.com"}, import_id=import_id))

        assert response.status_code == 422
        assert response.json() == {
            "error": "Invalid parameters",
            "details": {"import_id": [{"error": "invalid", "options": {}}]},
        }
    assert not MemberImport.objects.exists()
    assert send(api, body({"email": "ann@example.com"}, import_id="...")).status_code == 202
    assert api.get("members/imports/...").json()["status"] == "done"


def test_rows_holding_what_postgresql_cannot_store_are_rejected_each_on_its_own(
    api: ClubClient, club: Club, send: Callable[..., Any]
) -> None:
    data = (
        '{"operation": "create", "members": ['
        '{"email": "ann@example.com"}, '
        '{"email": "bob@example.com", "properties": {"x": 1e400}}, '
        '{"email": "cid@example.com", "properties": {"x": [1, -1e400]}}, '
        '{"email": "dan@example.com", "properties": {"x": "a\\ud800"}}, '
        '{"email": "eve@example.com", "consents": {"\\udc00": true}}, '
        '{"email": "fay@example.com", "\\ud800": 1}, '
        '{"email": "gus@example.com"}]}'
    )

    response = send(api, data)

    assert response.status_code == 202
    result = api.get(f"members/imports/{response.json()['import_id']}").json()
    assert (result["status"], result["created"], result["rejected"]) == ("done", 2, 5)
    assert result["rejected_rows"] == [
        {
            "index": 1,
            "member": {"email": "bob@example.com", "properties": {"x": "Infinity"}},
            "reason": "the row: inf is not a JSON number",
        },
        {
            "index": 2,
            "member": {"email": "cid@example.com", "properties": {"x": [1, "-Infinity"]}},
            "reason": "the row: -inf is not a JSON number",
        },
        {
            "index": 3,
            "member": {"email": "dan@example.com", "properties": {"x": "a\ufffd"}},
            "reason": "the row: a string is not valid UTF-8",
        },
        {
            "index": 4,
            "member": {"email": "eve@example.com", "consents": {"\ufffd": True}},
            "reason": "the row: '\\udc00' is not a valid key",
        },
        {
            "index": 5,
            "member": {"email": "fay@example.com", "\ufffd": 1},
            "reason": "unknown field '\\ud800' (properties go in the properties object)",
        },
    ]
    assert set(Member.objects.filter(club=club).values_list("email", flat=True)) == {
        "ann@example.com",
        "gus@example.com",
    }
