"""Exactly one module writes membership rows, their events and the counts: groups.ledger.

The app code is read, not run: every SQL statement that inserts into, deletes from or
updates the membership, event or group-count columns, and every ORM write on memberships
and events, must be in groups/ledger.py. The scanner is shown to catch each kind of write.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from groups.models import Membership, MembershipEvent

ROOT = Path(__file__).resolve().parents[2]
APPS = ("loyalty", "members", "audiences", "groups")
WRITER = ROOT / "groups" / "ledger.py"
TABLES = (Membership._meta.db_table, MembershipEvent._meta.db_table)
# How code names the two tables and their rows, in SQL placeholders and ORM chains.
ROWS = re.compile(
    r"\b(Membership|MembershipEvent)\b|MEMBERSHIP_TABLE|EVENT_TABLE|membership_model\(\)"
    r"|\.memberships\b|" + "|".join(rf"\b{table}\b" for table in TABLES)
)
SQL_WRITE = re.compile(r"\b(INSERT\s+INTO|DELETE\s+FROM|UPDATE|TRUNCATE|COPY)\s+(\{[^}]*\}|\S+)")
COUNT_WRITE = re.compile(r"\bSET\b[^;]*\bmembers_count\b")
ORM_WRITES = frozenset(
    {"create", "bulk_create", "update", "delete", "get_or_create", "update_or_create"}
)
COUNT = "members_count"


def _text(node: ast.AST) -> str | None:
    """A string literal or f-string as text, each placeholder as ``{its source}``."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        return "".join(
            part.value if isinstance(part, ast.Constant) else "{" + ast.unparse(part.value) + "}"  # type: ignore[attr-defined]
            for part in node.values
        )
    return None


def _receiver_names(node: ast.expr) -> Iterator[str]:
    """The names a chain of calls, attributes and subscripts starts from."""
    while isinstance(node, ast.Call | ast.Attribute | ast.Subscript):
        node = node.func if isinstance(node, ast.Call) else node.value
    if isinstance(node, ast.Name):
        yield node.id


def writes(source: str) -> Iterator[tuple[int, str]]:
    """Each (line, what) in ``source`` that writes memberships, events or counts."""
    tree = ast.parse(source)
    # Names bound to membership or event querysets (``rows = Membership.objects...``).
    rows_names = {
        target.id
        for node in ast.walk(tree)
        if isinstance(node, ast.Assign) and ROWS.search(ast.unparse(node.value))
        for target in node.targets
        if isinstance(target, ast.Name)
    }
    # Docstrings and other lone strings are prose, not statements; an f-string's pieces
    # are read with it.
    prose = {
        id(node.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)
    } | {
        id(part)
        for node in ast.walk(tree)
        if isinstance(node, ast.JoinedStr)
        for part in node.values
    }
    for node in ast.walk(tree):
        text = None if id(node) in prose else _text(node)
        if text is not None:
            for match in SQL_WRITE.finditer(text):
                if ROWS.search(match.group(2)):
                    yield node.lineno, f"SQL {match.group(1)} {match.group(2)}"
            if COUNT_WRITE.search(text):
                yield node.lineno, "SQL write of members_count"
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        if isinstance(func, ast.Attribute) and func.attr in ORM_WRITES:
            chain = ast.unparse(func.value)
            if ROWS.search(chain) or rows_names & set(_receiver_names(func.value)):
                yield node.lineno, f"ORM {func.attr}() on {chain}"
            if any(keyword.arg == COUNT for keyword in node.keywords):
                yield node.lineno, f"ORM {func.attr}() of members_count"
        if (
            getattr(func, "id", None) == "F"
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and node.args[0].value == COUNT
        ):
            yield node.lineno, 'F("members_count")'


def app_modules() -> Iterator[Path]:
    for app in APPS:
        for path in sorted((ROOT / app).rglob("*.py")):
            if "migrations" not in path.parts:
                yield path


def test_only_the_ledger_writes_memberships_events_and_counts() -> None:
    found = [
        f"{path.relative_to(ROOT)}:{line}: {what}"
        for path in app_modules()
        if path != WRITER
        for line, what in writes(path.read_text(encoding="utf-8"))
    ]

    assert found == []


def test_the_ledger_is_where_rows_events_and_counts_are_written() -> None:
    found = {what for _line, what in writes(WRITER.read_text(encoding="utf-8"))}

    assert {
        "SQL INSERT INTO {MEMBERSHIP_TABLE}",
        "SQL INSERT INTO {EVENT_TABLE}",
        "SQL DELETE FROM {MEMBERSHIP_TABLE}",
        "SQL DELETE FROM {EVENT_TABLE}",
        "SQL write of members_count",
    } <= found


@pytest.mark.parametrize(
    "code",
    [
        'cursor.execute(f"INSERT INTO {MEMBERSHIP_TABLE} (club_id) VALUES (%s)", [1])',
        'cursor.execute(f"DELETE FROM {Membership._meta.db_table} WHERE id = %s", [1])',
        'cursor.execute("INSERT INTO groups_membershipevent (kind) VALUES (%s)", ["left"])',
        'cursor.execute(f"UPDATE {GROUP_TABLE} SET members_count = 0")',
        'cursor.execute(f"TRUNCATE {membership_model()._meta.db_table}")',
        "Membership.objects.filter(group=group).delete()",
        "MembershipEvent.objects.bulk_create(events)",
        "group.memberships.create(member=member)",
        "rows = Membership.objects.filter(club=club)\nrows.update(joined_at=now)",
        'MembersGroup.objects.filter(pk=1).update(members_count=F("members_count") + 1)',
    ],
)
def test_the_scanner_catches_each_kind_of_write(code: str) -> None:
    assert list(writes(code))


def test_the_scanner_lets_reads_and_other_tables_pass() -> None:
    code = (
        "Membership.objects.filter(club=club).count()\n"
        'cursor.execute(f"UPDATE {MEMBER_TABLE} SET email = %s", [email])\n'
        'cursor.execute(f"SELECT member_id FROM {MEMBERSHIP_TABLE}")\n'
        "member.delete()\n"
    )

    assert list(writes(code)) == []
