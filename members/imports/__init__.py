"""The member import engine: CSV or JSON-lines rows into a club's members, batch by batch.

``reading`` turns files into rows, ``rows`` validates them, ``merging`` decides what each
does to its member, ``database`` holds the SQL and ``engine`` runs the batches.
"""

from members.imports.engine import ARRAYS, MATCH_BY, MODES, ImportReport, import_members
from members.imports.reading import Reject, RowReader, read_rows

__all__ = [
    "ARRAYS",
    "MATCH_BY",
    "MODES",
    "ImportReport",
    "Reject",
    "RowReader",
    "import_members",
    "read_rows",
]
