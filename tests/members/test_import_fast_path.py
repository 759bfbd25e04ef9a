"""The re-import fast path against the full path: the same history in two clubs, one of them
importing with the lookup of known rows turned off, must end the same after every step."""

from __future__ import annotations

import json
import random
import re
from pathlib import Path
from typing import Any

import pytest

from loyalty.models import Club
from members.imports import database, import_members, read_rows
from members.models import Member
from members.services import create_member, delete_member, update_member
from tests.factories import ClubFactory

pytestmark = pytest.mark.django_db

NAMES = ["ann", "bob", "cat"]
MSISDNS = ["4740000001", "4740000002", "4740000003"]


def email(rng: random.Random) -> str:
    written = f"{rng.choice(NAMES)}@example.com"
    return rng.choice([written, written, f" {written.upper()} ", "not-an-email"])


def msisdn(rng: random.Random) -> str:
    digits = rng.choice(MSISDNS)
    return rng.choice([digits, digits, f"+{digits[:2]} {digits[2:]}", f"00{digits}"])


def row(rng: random.Random) -> dict[str, Any]:
    """A row by email, msisdn and/or the k-th member's id (filled in per club)."""
    given: dict[str, Any] = {}
    for name, make in (("email", email), ("msisdn", msisdn)):
        if rng.random() < 0.6:
            given[name] = make(rng)
    if rng.random() < 0.25 or not given:
        given["id"] = rng.randrange(4)
    if rng.random() < 0.7:
        given["nick"] = rng.choice(["A", "B"])
    return given


def history(seed: int) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    steps: list[dict[str, Any]] = []
    # Each file keeps its format and options, as a re-run would: rows are known only under
    # the header and options that imported them.
    files = [
        {
            "rows": [row(rng) for _ in range(rng.randrange(1, 6))],
            "format": rng.choice(["csv", "jsonl"]),
            "options": {
                "mode": rng.choice(["upsert", "upsert", "update"]),
                "match_by": rng.choice([None, None, "email", "msisdn"]),
            },
        }
        for _ in range(2)
    ]
    for number in range(7):
        if number and rng.random() < 0.2:
            steps.append(
                {"edit": rng.choice(["update", "create", "delete"]), "k": rng.randrange(4)}
            )
            continue
        file = files[0] if number == 0 else rng.choice(files)
        rows = file["rows"]
        if rng.random() < 0.3:
            rows = [*rows[:-1], row(rng), *rows[-1:]]
        if rng.random() < 0.3:
            # A row in front that may move a member's email or msisdn before its known row.
            key, value = rng.choice(
                [
                    ("email", f"moved{rng.randrange(9)}@example.com"),
                    ("msisdn", f"4750{rng.randrange(9)}00000"),
                ]
            )
            rows = [{"id": rng.choice([0, 0, 1, 2]), key: value}, *rows]
        options = {**file["options"], "batch_size": rng.choice([1, 2, 3, 8, 8, 8])}
        steps.append({**file, "rows": rows, "options": options})
    return steps


def kth(club: Club, k: int) -> int:
    ids = list(Member.objects.filter(club=club).order_by("pk").values_list("pk", flat=True))
    return ids[k] if k < len(ids) else 10**9 + k


def write(club: Club, step: dict[str, Any], path: Path) -> Path:
    rows = [
        {**given, "id": kth(club, given["id"])} if "id" in given else given
        for given in step["rows"]
    ]
    if step["format"] == "jsonl":
        lines = [
            json.dumps(
                {k: v for k, v in given.items() if k != "nick"}
                | ({"properties": {"nick": given["nick"]}} if "nick" in given else {})
            )
            for given in rows
        ]
        path = path.with_suffix(".jsonl")
        path.write_text("".join(f"{line}\n" for line in lines))
        return path
    columns = ["id", "email", "msisdn", "nick"]
    lines = [",".join(columns)] + [
        ",".join(str(given.get(column, "")) for column in columns) for given in rows
    ]
    path = path.with_suffix(".csv")
    path.write_text("".join(f"{line}\n" for line in lines))
    return path


def state(club: Club) -> list[tuple[Any, ...]]:
    return sorted(
        (m.email or "", m.msisdn or "", json.dumps(m.properties, sort_keys=True))
        for m in Member.objects.filter(club=club)
    )


def outcome(club: Club, step: dict[str, Any], path: Path) -> tuple[Any, ...]:
    rejects: list[tuple[int, str]] = []
    report = import_members(
        club=club,
        rows=read_rows(write(club, step, path)),
        on_reject=lambda reject: rejects.append((reject.line, reject.reason)),
        **step["options"],
    )
    ranks = {
        str(pk): str(rank)
        for rank, pk in enumerate(
            Member.objects.filter(club=club).order_by("pk").values_list("pk", flat=True)
        )
    }
    # Member ids differ between the clubs: name them by their rank in the club.
    reasons = [
        (line, re.sub(r"(member |id )(\d+)", lambda m: m[1] + ranks.get(m[2], "?"), why))
        for line, why in rejects
    ]
    return (report.created, report.updated, report.unchanged, report.rejected), reasons


def edit(club: Club, step: dict[str, Any]) -> None:
    members = list(Member.objects.filter(club=club).order_by("pk"))
    if step["edit"] == "create":
        taken = {m.msisdn for m in members}
        free = [digits for digits in MSISDNS if digits not in taken]
        if free:
            create_member(club=club, source="api", msisdn=free[0])
    elif step["k"] < len(members):
        member = members[step["k"]]
        if step["edit"] == "update":
            update_member(member=member, source="api", properties={"nick": "C"})
        else:
            delete_member(member=member, source="api")


@pytest.mark.parametrize("seed", range(100))
def test_known_rows_end_as_the_full_path_ends(
    seed: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fast, slow = ClubFactory(), ClubFactory()
    lookup = database.known
    # The full path: fingerprints are still written, only never looked up.
    monkeypatch.setattr(
        database,
        "known",
        lambda club, keyed, after=None: {} if club.pk == slow.pk else lookup(club, keyed, after),
    )
    for number, step in enumerate(history(seed)):
        if "edit" in step:
            edit(fast, step)
            edit(slow, step)
            continue
        assert outcome(fast, step, tmp_path / f"f{number}") == outcome(
            slow, step, tmp_path / f"s{number}"
        ), step
        assert state(fast) == state(slow), step
