"""The import's SQL: its scratch tables, and each batch's lookups and writes."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from typing import Any

from django.db import connection, transaction
from django.utils import timezone

from groups.models import Membership
from loyalty.db import pg_array
from loyalty.models import Club
from members.models import Member
from members.services import JSON_FIELDS, MEMBER_FIELDS

MEMBER_TABLE = Member._meta.db_table
# Column order of the rows read and written below.
STATE_COLUMNS = MEMBER_FIELDS
SEEN_TABLE = "members_import_seen"
CHANGES_TABLE = "members_import_changes"


# The club as a value the PostgreSQL planner cannot see. While an import fills a new club,
# the statistics still say the club has no members, and with the plain value the planner
# probed "(club_id, id)" for club_id alone, reading the whole club for every email: the
# import slowed to a crawl at 300,000 members. Unseen, the club is costed as an average one
# and the lookups go to the index of the column they compare.
CLUB = "(SELECT %s::bigint)"


# An import that has created this many members refreshes the planner's statistics, and
# again each time it has created four times as many as at the last refresh.
ANALYZE_AFTER = 10_000


def refresh_statistics() -> None:
    """Re-count, for the PostgreSQL planner, how many members and memberships each club has.

    While an import grows a club, the statistics say it is as small as it was: statements
    of a batch that filter by club (the groups' refresh of the batch's members too) then
    read the whole club, every batch, and the import slows down as the club grows. Only the
    club and group columns are sampled: about a second on a table of two million members.
    """
    membership = Membership._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(f"ANALYZE {MEMBER_TABLE} (club_id)")
        cursor.execute(f"ANALYZE {membership} (club_id, group_id)")


def no_jit() -> None:
    """Turn PostgreSQL's JIT compiler off for the rest of the batch's transaction.

    Its statements reach thousands of rows by index, never enough for compiled code to
    win back its compile time: 8 of the 40 ms of a batch's lookup, and 7% of a re-import.
    """
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SET LOCAL jit = off")


def _temp(table: str) -> str:
    return f"pg_temp.{table}" if connection.vendor == "postgresql" else f"temp.{table}"


def _create_scratch() -> None:
    _drop_scratch()
    with connection.cursor() as cursor:
        # Which member each imported row took, so that a later duplicate is caught even in
        # another batch; kept in the database so memory stays flat whatever the file size.
        cursor.execute(
            f"CREATE TEMP TABLE {SEEN_TABLE} (member_id bigint PRIMARY KEY, line bigint NOT NULL)"
        )
        if connection.vendor == "postgresql":
            # A batch's changed members, copied in for one UPDATE ... FROM.
            columns = ", ".join(
                f"{c} {'jsonb' if c in JSON_FIELDS else 'text'}" for c in STATE_COLUMNS
            )
            cursor.execute(
                f"CREATE TEMP TABLE {CHANGES_TABLE} (id bigint, {columns}, import_fingerprint text)"
            )


def _drop_scratch() -> None:
    with connection.cursor() as cursor:
        for table in (SEEN_TABLE, CHANGES_TABLE):
            cursor.execute(f"DROP TABLE IF EXISTS {_temp(table)}")


@contextmanager
def scratch(dry_run: bool) -> Iterator[None]:
    """Temporary tables for one import; in a dry run, everything is rolled back at the end."""
    with transaction.atomic() if dry_run else nullcontext():
        _create_scratch()
        try:
            yield
        finally:
            _drop_scratch()
        if dry_run:
            transaction.set_rollback(True)


Stored = tuple[Any, ...]  # id, then STATE_COLUMNS with JSON as text, then the line that took it


def stored(club: Club, emails: list[str], msisdns: list[str], ids: list[int]) -> list[Stored]:
    """The club's members having any of these identifiers, and the line that took each.

    On PostgreSQL every identifier is one index probe (a LATERAL subquery with LIMIT is
    never turned into a join that scans the club), on the index of its column (see
    ``CLUB``). The rows are locked until the batch commits, so that a concurrent change is
    not overwritten by a merge computed before it: in id order, as other writers lock
    members, and without the key lock of FOR UPDATE, which the foreign-key checks of
    concurrent membership inserts would wait on (a deadlock with a bulk add).
    """
    columns = ", ".join(f"m.{c}" for c in ("id", *STATE_COLUMNS))
    seen = _temp(SEEN_TABLE)
    # Emails and msisdns go to PostgreSQL as one string split there: quoting 5,000 array
    # elements in Python took longer than the lookup. No valid one contains a line break.
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            by = (
                "SELECT f.id FROM unnest(string_to_array(%s, E'\\n')) AS k(value) "
                "CROSS JOIN LATERAL (SELECT id "
                f"FROM {MEMBER_TABLE} WHERE club_id = {CLUB} AND {{}} = k.value LIMIT 1) AS f"
            )
            cursor.execute(
                f"WITH ids AS ({by.format('email')} UNION {by.format('msisdn')} "
                "UNION SELECT unnest(%s::bigint[])) "
                f"SELECT {columns}, s.line FROM (SELECT id FROM ids ORDER BY id) AS ids "
                f"CROSS JOIN LATERAL (SELECT * FROM {MEMBER_TABLE} WHERE club_id = {CLUB} "
                "AND id = ids.id LIMIT 1 FOR NO KEY UPDATE) AS m "
                f"LEFT JOIN LATERAL (SELECT line FROM {seen} WHERE member_id = m.id LIMIT 1) "
                "AS s ON true",
                ["\n".join(emails), club.pk, "\n".join(msisdns), club.pk, pg_array(ids), club.pk],
            )
        else:
            by = (
                f"SELECT id FROM {MEMBER_TABLE} WHERE club_id = %s "
                "AND {} IN (SELECT value FROM json_each(%s))"
            )
            cursor.execute(
                f"SELECT {columns}, s.line FROM {MEMBER_TABLE} AS m "
                f"LEFT JOIN {seen} AS s ON s.member_id = m.id WHERE m.club_id = %s AND m.id IN "
                f"({by.format('email')} UNION {by.format('msisdn')} "
                "UNION SELECT value FROM json_each(%s))",
                [
                    club.pk,
                    club.pk,
                    json.dumps(emails),
                    club.pk,
                    json.dumps(msisdns),
                    json.dumps(ids),
                ],
            )
        rows: list[Stored] = cursor.fetchall()
        return rows


def remember(seen: list[tuple[int, int]]) -> None:
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            # One "id line" string split there: cheaper than dumping two bigint arrays.
            cursor.execute(
                f"INSERT INTO {_temp(SEEN_TABLE)} (member_id, line) "
                "SELECT split_part(p, ' ', 1)::bigint, split_part(p, ' ', 2)::bigint "
                "FROM unnest(string_to_array(%s, E'\\n')) AS p",
                ["\n".join(f"{pk} {line}" for pk, line in seen)],
            )
        else:
            cursor.execute(
                f"INSERT INTO {_temp(SEEN_TABLE)} (member_id, line) "
                "SELECT value ->> 0, value ->> 1 FROM json_each(%s)",
                [json.dumps(seen)],
            )


def update(club: Club, changes: list[Stored], fingerprints: list[str | None]) -> None:
    """Write the changed members (id, then STATE_COLUMNS with JSON as text) in one UPDATE,
    each with the fingerprint of the row that changed it."""
    columns = (*STATE_COLUMNS, "import_fingerprint")
    assignments = ", ".join(f"{c} = c.{c}" for c in columns)
    now = timezone.now()
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            table = _temp(CHANGES_TABLE)
            cursor.execute(f"TRUNCATE {table}")
            with cursor.cursor.copy(f"COPY {table} (id, {', '.join(columns)}) FROM STDIN") as copy:
                for change, fingerprint in zip(changes, fingerprints, strict=True):
                    copy.write_row((*change, fingerprint))
            # Statistics first: joined unanalysed, a temporary table can get a bad plan.
            cursor.execute(f"ANALYZE {table}")
            cursor.execute(
                f"UPDATE {MEMBER_TABLE} AS m SET {assignments}, updated_at = %s "
                f"FROM {table} AS c WHERE m.club_id = {CLUB} AND m.id = c.id",
                [now, club.pk],
            )
            return
        # "+club_id": not through the club's index, which made SQLite read the whole club
        # and, for each member, the whole batch; the batch's ids lead instead.
        picks = ", ".join(
            f"value ->> {index} AS {column}" for index, column in enumerate(("id", *columns))
        )
        rows = [
            (*change, fingerprint)
            for change, fingerprint in zip(changes, fingerprints, strict=True)
        ]
        cursor.execute(
            f"UPDATE {MEMBER_TABLE} SET {assignments}, updated_at = %s "
            f"FROM (SELECT {picks} FROM json_each(%s)) AS c "
            f"WHERE +{MEMBER_TABLE}.club_id = %s AND {MEMBER_TABLE}.id = c.id",
            [connection.ops.adapt_datetimefield_value(now), json.dumps(rows), club.pk],
        )


def confirm(club: Club, confirmed: list[tuple[int, str]]) -> None:
    """Give unchanged members the fingerprint of their row, where they hold another or none.

    Nothing a user sees changes (not ``updated_at``), and a member that already holds it is
    not written: so the next import of the same file knows the row, also for a member that
    came from elsewhere or from an import under older rules.
    """
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                f"UPDATE {MEMBER_TABLE} AS m SET import_fingerprint = c.fingerprint FROM "
                "(SELECT split_part(p, ' ', 1)::bigint AS id, split_part(p, ' ', 2) AS fingerprint "
                "FROM unnest(string_to_array(%s, E'\\n')) AS p) AS c "
                f"WHERE m.club_id = {CLUB} AND m.id = c.id "
                "AND m.import_fingerprint IS DISTINCT FROM c.fingerprint",
                ["\n".join(f"{pk} {fingerprint}" for pk, fingerprint in confirmed), club.pk],
            )
            return
        cursor.execute(
            f"UPDATE {MEMBER_TABLE} SET import_fingerprint = c.fingerprint "
            "FROM (SELECT value ->> 0 AS id, value ->> 1 AS fingerprint FROM json_each(%s)) AS c "
            f"WHERE +{MEMBER_TABLE}.club_id = %s AND {MEMBER_TABLE}.id = c.id "
            f"AND {MEMBER_TABLE}.import_fingerprint IS NOT c.fingerprint",
            [json.dumps(confirmed), club.pk],
        )


# Hex digits of a row's fingerprint, a 16-byte BLAKE2b digest (the model's max_length).
FINGERPRINT_LENGTH = 32
Keyed = tuple[str, str, str]  # a row's fingerprint, the identifier to look it up by, its value


def _holds(column: str, fingerprint: str) -> str:
    """SQL: the member's fingerprint ``column`` is ``fingerprint`` (never "").

    Through COALESCE: a plain "=" lets the planner pick the partial index of the club's
    imported members (``club_has_fingerprints``) for a lookup by email. Right after a first
    import, the statistics still say no member holds a fingerprint, that index looks empty,
    and every lookup read the whole club: a re-import of 1,000,000 rows ran for hours.
    """
    return f"coalesce({column}, '') = {fingerprint}"


KnownMembers = dict[str, tuple[int, int | None]]  # fingerprint -> (member id, line that took it)


def known(club: Club, keyed: list[Keyed], after: int | None = None) -> KnownMembers:
    """The club's members holding these rows' fingerprints, each with the row's email,
    msisdn or id: fingerprint -> (id, line that took it).

    With ``after``, first among the members that follow that id: a file imported before
    is read again in the order its members were made, so a batch's members are mostly the
    next ids, read in one range scan, where a lookup per row costs an index probe each.
    The rest are looked up by their identifiers' unique indexes: no index of the
    fingerprints to keep up. Not locked, unlike the members ``stored`` reads: a known row
    writes nothing to its member (a ``--group`` add locks it as every membership write
    does), so a concurrent change of it is simply ordered after this import's row.
    """
    found = _known_after(club, keyed, after) if after is not None else {}
    rest = [key for key in keyed if key[0] not in found]
    return {**found, **_known_by_identifier(club, rest)} if rest else found


def _known_after(club: Club, keyed: list[Keyed], after: int) -> KnownMembers:
    """``known`` among the ``len(keyed)`` members after id ``after``, matched here."""
    with connection.cursor() as cursor:
        # The members are taken first, then joined: with the join under the LIMIT, the
        # planner may hash the club's members after ``after`` whole (a 1,000,000-row
        # re-import took 86 s). The seen ones are bounded by ``after`` too, for the same
        # reason: they grow with the file.
        cursor.execute(
            "SELECT m.id, m.import_fingerprint, m.email, m.msisdn, s.line FROM "
            f"(SELECT id, import_fingerprint, email, msisdn FROM {MEMBER_TABLE} "
            "WHERE club_id = %s AND id > %s ORDER BY id LIMIT %s) AS m "
            f"LEFT JOIN {_temp(SEEN_TABLE)} AS s ON s.member_id = m.id AND s.member_id > %s",
            [club.pk, after, len(keyed), after],
        )
        holders = {row[1]: row for row in cursor.fetchall() if row[1] is not None}
    found: KnownMembers = {}
    for fingerprint, name, value in keyed:
        holder = holders.get(fingerprint)
        # The same test as the lookup's: the member holds the fingerprint and the identifier.
        if holder is not None and value == (
            holder[2] if name == "email" else holder[3] if name == "msisdn" else str(holder[0])
        ):
            found[fingerprint] = (holder[0], holder[4])
    return found


def _known_by_identifier(club: Club, keyed: list[Keyed]) -> KnownMembers:
    """``known`` through the unique index of each row's identifier."""
    seen = _temp(SEEN_TABLE)
    # Each pair is "<fingerprint> <value>": the value starts at a fixed offset.
    width, start = FINGERPRINT_LENGTH, FINGERPRINT_LENGTH + 2
    by_name: dict[str, list[str]] = {}
    # Sorted, so that the lookups walk each index in order, each near the last.
    for fingerprint, name, value in sorted(keyed, key=lambda k: (k[1], k[2])):
        by_name.setdefault(name, []).append(f"{fingerprint} {value}")
    queries: list[str] = []
    params: list[Any] = []
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            for name, pairs in by_name.items():
                value = "k.value::bigint" if name == "id" else "k.value"
                # One string split there, as in ``stored``: cheaper than arrays. No key holds
                # a line break (``rows.lookup_key``).
                queries.append(
                    f"SELECT k.fp, m.id, s.line FROM (SELECT left(p, {width}) AS fp, "
                    f"substr(p, {start}) AS value "
                    "FROM unnest(string_to_array(%s, E'\\n')) AS p) AS k "
                    f"CROSS JOIN LATERAL (SELECT id FROM {MEMBER_TABLE} WHERE club_id = {CLUB} "
                    f"AND {name} = {value} AND {_holds('import_fingerprint', 'k.fp')} LIMIT 1) "
                    "AS m "
                    f"LEFT JOIN LATERAL (SELECT line FROM {seen} WHERE member_id = m.id LIMIT 1) "
                    "AS s ON true"
                )
                params += ["\n".join(pairs), club.pk]
        else:
            for name, pairs in by_name.items():
                value = f"substr(j.value, {start})"
                if name == "id":
                    value = f"CAST({value} AS INTEGER)"
                # CROSS JOIN: SQLite keeps the rows outermost and probes the members' index.
                queries.append(
                    f"SELECT substr(j.value, 1, {width}), m.id, s.line FROM json_each(%s) AS j "
                    f"CROSS JOIN {MEMBER_TABLE} AS m LEFT JOIN {seen} AS s ON s.member_id = m.id "
                    f"WHERE m.club_id = %s AND m.{name} = {value} "
                    f"AND {_holds('m.import_fingerprint', f'substr(j.value, 1, {width})')}"
                )
                params += [json.dumps(pairs), club.pk]
        if not queries:
            return {}
        cursor.execute(" UNION ALL ".join(queries), params)
        return {fp: (pk, line) for fp, pk, line in cursor.fetchall()}
