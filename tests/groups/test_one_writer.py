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
    r"\b(Membership|MembershipEvent)\b|MEMBERSHIP_TABLE|EVENT_TABLE|\.memberships\b|"
    + "|".join(rf"\b{table}\b" for table in TABLES)
)
# The table written (``COPY (SELECT ...) TO`` reads: a parenthesis is no table).
SQL_WRITE = re.compile(
    r"\b(INSERT\s+INTO|DELETE\s+FROM|UPDATE|TRUNCATE|COPY)\s+(\{[^}]*\}|[^\s(]\S*)"
)
COUNT_WRITE = re.compile(r"\bSET\b[^;]*\bmembers_count\b")
ORM_WRITES = frozenset(
    {"create", "bulk_create", "update", "delete", "save", "get_or_create", "update_or_create"}
)
COUNT = "members_count"
# Placeholders of %-formatting and of str.format (and psycopg's sql.SQL(...).format).
PERCENT_FIELD = re.compile(r"%(?:\([^)]*\))?[sdr]")
FORMAT_FIELD = re.compile(r"\{([^{}]*)\}")


def _source(node: ast.expr) -> str:
    return "{" + ast.unparse(node) + "}"


def _text(node: ast.AST) -> str | None:
    """SQL as text, each piece filled in at run time as ``{its source}``: a string literal,
    an f-string, a concatenation with ``+``, ``%``-formatting, or ``.format()`` of a literal
    (psycopg's ``sql.SQL("...").format`` too)."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        return "".join(
            part.value if isinstance(part, ast.Constant) else _source(part.value)  # type: ignore[attr-defined]
            for part in node.values
        )
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        left, right = _text(node.left), _text(node.right)
        if left is None and right is None:
            return None
        return (left or _source(node.left)) + (right or _source(node.right))
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Mod):
        template = _text(node.left)
        if template is None:
            return None
        args = iter(node.right.elts if isinstance(node.right, ast.Tuple) else [node.right])
        return PERCENT_FIELD.sub(lambda m: _source(next(args, node.right)), template)
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
        if node.func.attr != "format":
            return None
        base = node.func.value
        if isinstance(base, ast.Call) and base.args:  # sql.SQL("...").format(...)
            base = base.args[0]
        template = _text(base)
        if template is None:
            return None
        positional = iter(node.args)
        named = {keyword.arg: keyword.value for keyword in node.keywords}

        def fill(match: re.Match[str]) -> str:
            name = match.group(1).split("!")[0].split(":")[0]
            if name.isdigit() and int(name) < len(node.args):
                return _source(node.args[int(name)])
            value = named.get(name) if name else next(positional, None)
            return _source(value) if value is not None else match.group(0)

        return FORMAT_FIELD.sub(fill, template)
    return None


def _names(source: str) -> set[str]:
    return set(re.findall(r"[A-Za-z_][A-Za-z0-9_]*", source))


def _receiver_names(node: ast.expr) -> Iterator[str]:
    """The names a chain of calls, attributes and subscripts starts from."""
    while isinstance(node, ast.Call | ast.Attribute | ast.Subscript):
        node = node.func if isinstance(node, ast.Call) else node.value
    if isinstance(node, ast.Name):
        yield node.id


def writes(source: str) -> Iterator[tuple[int, str]]:
    """Each (line, what) in ``source`` that writes memberships, events or counts."""
    tree = ast.parse(source)
    # Names bound to membership or event rows, querysets or table names: assigned
    # (``rows = Membership.objects...``, ``first = rows.first()``) or looped over
    # (``for row in rows``), to a fixed point.
    rows_names: set[str] = set()
    bindings: list[tuple[ast.expr, ast.expr]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign):
            bindings += [(target, node.value) for target in node.targets]
        elif isinstance(node, ast.AnnAssign | ast.NamedExpr) and node.value is not None:
            bindings.append((node.target, node.value))
        elif isinstance(node, ast.For | ast.AsyncFor | ast.comprehension):
            bindings.append((node.target, node.iter))
    while True:
        bound = {
            name.id
            for target, value in bindings
            if ROWS.search(ast.unparse(value)) or rows_names & set(_receiver_names(value))
            for name in ast.walk(target)
            if isinstance(name, ast.Name)
        }
        if bound <= rows_names:
            break
        rows_names |= bound

    # Names bound to a value that names the count (``fields = ["members_count"]``).
    count_names = {
        name.id
        for target, value in bindings
        if COUNT in ast.unparse(value)
        for name in ast.walk(target)
        if isinstance(name, ast.Name)
    }

    def names_rows(text: str) -> bool:
        return bool(ROWS.search(text) or rows_names & _names(text))

    # Docstrings and other lone strings are prose, not statements; the pieces of an f-string,
    # a concatenation or a formatting are read with it.
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
                if names_rows(match.group(2)):
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
        if any(
            keyword.arg == "update_fields"
            and (
                COUNT in ast.unparse(keyword.value)
                or count_names & _names(ast.unparse(keyword.value))
            )
            for keyword in node.keywords
        ):
            yield node.lineno, "members_count in update_fields"
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
        'cursor.execute(f"TRUNCATE {Membership._meta.db_table}")',
        "Membership.objects.filter(group=group).delete()",
        "MembershipEvent.objects.bulk_create(events)",
        "group.memberships.create(member=member)",
        "rows = Membership.objects.filter(club=club)\nrows.update(joined_at=now)",
        'MembersGroup.objects.filter(pk=1).update(members_count=F("members_count") + 1)',
        # .save() and .delete() of a row, however it was reached.
        "Membership(club=club, group=group, member=member).save()",
        "row = Membership.objects.get(pk=1)\nrow.delete()",
        "event = group.memberships.first()\nevent.save()",
        "rows = Membership.objects.filter(club=club)\nfor row in rows:\n    row.delete()",
        "for event in MembershipEvent.objects.all():\n    event.save()",
        "[row.delete() for row in Membership.objects.filter(group=group)]",
        # The count written through save().
        'group.save(update_fields=["name", "members_count"])',
        'fields = ["members_count"]\ngroup.save(update_fields=fields)',
        # SQL built by concatenation and formatting.
        'cursor.execute("DELETE FROM " + MEMBERSHIP_TABLE + " WHERE group_id = %s", [1])',
        'cursor.execute("INSERT INTO %s (club_id) VALUES (1)" % EVENT_TABLE)',
        'cursor.execute("DELETE FROM {} WHERE id = 1".format(Membership._meta.db_table))',
        'cursor.execute(sql.SQL("TRUNCATE {}").format(sql.Identifier(MEMBERSHIP_TABLE)))',
        'table = Membership._meta.db_table\ncursor.execute("DELETE FROM " + table)',
        'cursor.execute("UPDATE groups_membersgroup " + "SET members_count = 0")',
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
        'group.save(update_fields=["name"])\n'
        "for member in members:\n    member.save()\n"
        'cursor.execute("DELETE FROM " + SEEN_TABLE)\n'
    )

    assert list(writes(code)) == []
