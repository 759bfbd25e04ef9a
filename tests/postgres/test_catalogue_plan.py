"""The rule builder's sample of a club's members reads the newest rows through the
``(club, id)`` index and stops at its limit, whatever the club's size and the other clubs'.

With the club as an equality the planner walked the primary key backwards and filtered by
club: past every newer member of the other clubs first (seen in a full test run).
"""

from __future__ import annotations

import pytest
from django.db import connection

from audiences.catalogue import SAMPLE_MEMBERS, member_sample
from loyalty.models import Club
from members.models import Member
from members.services import bulk_create_members

pytestmark = pytest.mark.django_db


def test_the_sample_walks_the_club_index_backwards_under_its_limit(
    club: Club, other_club: Club
) -> None:
    for owner, count in ((club, 4 * SAMPLE_MEMBERS), (other_club, 8 * SAMPLE_MEMBERS)):
        bulk_create_members(
            club=owner,
            members=[Member(email=f"m{n}@{owner.slug}.example") for n in range(count)],
            source="system",
        )
    with connection.cursor() as cursor:
        cursor.execute(f"ANALYZE {Member._meta.db_table}")

    plan = member_sample(club).explain()

    assert plan.splitlines()[0].startswith("Limit")
    assert "Index Scan Backward using member_club_id_uniq" in plan
    assert "Filter" not in plan
    assert "Seq Scan" not in plan
    assert "Sort" not in plan
