"""A group's members as CSV, streamed in constant memory whatever the group's size.

The cells are the data as stored, unless formulas are to be escaped: a spreadsheet runs a
cell that starts with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return as a formula
(an email may start with ``=``), so such a cell then gets a ``'`` in front, as OWASP's
advice on CSV injection has it. The admin's download escapes them; the API and the
command keep the data raw unless asked.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from typing import Any

from django.db import DEFAULT_DB_ALIAS, connections, router
from django.http import StreamingHttpResponse

from groups.models import MembersGroup, Membership
from members.models import Member

EXPORT_COLUMNS = ("id", "email", "msisdn", "joined_at", "properties")
CSV_CONTENT_TYPE = "text/csv; charset=utf-8"
# Rows per chunk: big enough that the per-chunk overhead vanishes, small enough to stream.
CHUNK_ROWS = 5000
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


# The join time in UTC to the second, written alike by both databases.
JOINED_AT = {
    "postgresql": "to_char(s.joined_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')",
    "sqlite": "strftime('%%Y-%%m-%%dT%%H:%%M:%%SZ', s.joined_at)",
}


def _cell(column: str, escape_formulas: bool) -> tuple[str, list[str]]:
    """A text column's cell, a ``'`` put before a formula's first character if asked."""
    if not escape_formulas:
        return column, []
    starts = ", ".join(["%s"] * len(FORMULA_STARTS))
    quoted = f"'''' || {column}"
    return (
        f"CASE WHEN substr({column}, 1, 1) IN ({starts}) THEN {quoted} ELSE {column} END",
        list(FORMULA_STARTS),
    )


def _select(group: MembersGroup, vendor: str, escape_formulas: bool) -> tuple[str, list[Any]]:
    member, membership = Member._meta.db_table, Membership._meta.db_table
    properties = "m.properties::text" if vendor == "postgresql" else "m.properties"
    cells, params = [], []
    for column in ("m.email", "m.msisdn", properties):
        sql, column_params = _cell(column, escape_formulas)
        cells.append(sql)
        params.extend(column_params)
    email, msisdn, props = cells
    # The members in id order: the membership index (club, group, member) serves it.
    return (
        f"SELECT m.id, {email}, {msisdn}, {JOINED_AT[vendor]}, {props} "
        f"FROM {membership} s "
        f"JOIN {member} m ON m.club_id = s.club_id AND m.id = s.member_id "
        "WHERE s.club_id = %s AND s.group_id = %s ORDER BY s.member_id",
        [*params, group.club_id, group.pk],
    )


def group_members_csv(
    group: MembersGroup, *, using: str = DEFAULT_DB_ALIAS, escape_formulas: bool = False
) -> Iterator[bytes]:
    """The header, then the members, as UTF-8 CSV chunks, read from the database ``using``
    (formulas escaped for spreadsheets if ``escape_formulas``).

    On PostgreSQL the server writes the CSV itself (``COPY ... TO STDOUT``) and this only
    passes its chunks on; elsewhere the rows are fetched and written chunk by chunk. The
    query runs when the first chunk is asked for, and its cursor closes with the iterator.
    """
    connection = connections[using]
    sql, params = _select(group, connection.vendor, escape_formulas)
    # Lines end in \n, as PostgreSQL's CSV writes them.
    yield (",".join(EXPORT_COLUMNS) + "\n").encode()
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            query = cursor.mogrify(sql, params)
            with cursor.cursor.copy(f"COPY ({query}) TO STDOUT WITH (FORMAT csv)") as copy:
                yield from (bytes(chunk) for chunk in copy)
        return
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        while rows := cursor.fetchmany(CHUNK_ROWS):
            writer.writerows(
                (pk, email or "", msisdn or "", joined_at, properties)
                for pk, email, msisdn, joined_at, properties in rows
            )
            yield buffer.getvalue().encode()
            buffer.seek(0)
            buffer.truncate()


def members_csv_response(
    group: MembersGroup, *, with_body: bool = True, escape_formulas: bool = False
) -> StreamingHttpResponse:
    """A download of the group's members as CSV, written while it is sent.

    The members are read where the router sends this request's reads (the replica, for an
    API GET with one configured), where the group itself was just read. The alias is picked
    now: the body is written after the view has returned, once the request's routing is
    reset. Without a body (a HEAD request) nothing is queried.
    """
    using = router.db_for_read(Membership)
    chunks = (
        group_members_csv(group, using=using, escape_formulas=escape_formulas) if with_body else ()
    )
    response = StreamingHttpResponse(chunks, content_type=CSV_CONTENT_TYPE)
    response["Content-Disposition"] = f'attachment; filename="members-group-{group.pk}.csv"'
    return response
