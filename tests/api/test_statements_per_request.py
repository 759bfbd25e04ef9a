"""The statements the apps' requests send: each read path reads its rows in one statement,
a page that ends the list counts nothing, and a member update looks up only what changed."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from groups import services
from groups.models import MembersGroup, Membership
from loyalty.models import Club
from members.models import Member
from tests.api_fixtures import ClubClient
from tests.factories import GroupFactory, MemberFactory
from tests.helpers import cond

pytestmark = pytest.mark.django_db


class Statements(list[str]):
    def on(self, table: str) -> list[str]:
        """The statements that name ``table``."""
        return [sql for sql in self if f'"{table}"' in sql or f" {table} " in sql]

    def counting(self) -> list[str]:
        """The counts of the apps' rows (the rate limiter's store counts its own)."""
        return [sql for sql in self if "COUNT(" in sql.upper() and "django_cache" not in sql]


@contextmanager
def statements() -> Iterator[Statements]:
    captured = Statements()
    with CaptureQueriesContext(connection) as queries:
        yield captured
    captured.extend(query["sql"] for query in queries.captured_queries)


def test_a_group_is_shown_from_one_statement(api: ClubClient, club: Club) -> None:
    group = GroupFactory(club=club, name="Red")

    with statements() as sent:
        response = api.get(f"members_groups/{group.pk}")

    assert response.json()["name"] == "Red"
    assert len(sent.on("groups_membersgroup")) == 1


def test_a_first_page_of_groups_that_ends_the_list_is_one_statement_and_no_count(
    api: ClubClient, club: Club
) -> None:
    for name in ("Red", "Blue"):
        GroupFactory(club=club, name=name)

    with statements() as sent:
        body = api.get("members_groups", {"per_page": 10}).json()

    # The club's "All members" group and the two.
    assert body["pagination_info"]["total_count"] == 3
    assert body["pagination_info"]["is_last_page"] is True
    assert len(sent.on("groups_membersgroup")) == 1
    assert not sent.counting()


def test_a_full_page_of_groups_counts_the_list(api: ClubClient, club: Club) -> None:
    for name in ("Red", "Blue"):
        GroupFactory(club=club, name=name)

    with statements() as sent:
        body = api.get("members_groups", {"per_page": 2}).json()

    assert len(body["members_groups"]) == 2
    assert body["pagination_info"]["total_count"] == 3
    assert body["pagination_info"]["next_page"] == 2
    assert len(sent.counting()) == 1


def test_a_later_page_that_ends_the_list_counts_nothing_and_one_beyond_it_counts(
    api: ClubClient, club: Club
) -> None:
    for name in ("Red", "Blue"):
        GroupFactory(club=club, name=name)

    with statements() as last:
        last_page = api.get("members_groups", {"per_page": 2, "page_no": 2}).json()
    beyond = api.get("members_groups", {"per_page": 2, "page_no": 3}).json()

    assert [group["name"] for group in last_page["members_groups"]] == ["Blue"]
    assert last_page["pagination_info"]["total_count"] == 3
    assert not last.counting()
    assert beyond["members_groups"] == []
    assert beyond["pagination_info"]["total_count"] == 3
    assert beyond["pagination_info"]["is_out_of_range"] is True


def test_a_first_page_of_members_that_ends_the_list_reads_no_count_stored_or_counted(
    api: ClubClient, club: Club
) -> None:
    MemberFactory.create_batch(3, club=club)

    with statements() as sent:
        body = api.get("members").json()

    assert body["pagination_info"]["total_count"] == 3
    assert len(sent.on("members_member")) == 1
    assert not sent.on("groups_membersgroup")
    assert not sent.counting()


def test_a_page_of_a_groups_members_reads_the_group_and_the_page_in_one_statement_each(
    api: ClubClient, club: Club
) -> None:
    group = GroupFactory(club=club)
    members = MemberFactory.create_batch(3, club=club)
    services.add_member_ids(group=group, member_ids=[m.pk for m in members], source="api")

    with statements() as sent:
        body = api.get(f"members_groups/{group.pk}/members", {"per_page": 2}).json()

    assert [member["id"] for member in body["members"]] == [m.pk for m in members[:2]]
    assert body["pagination_info"]["total_count"] == 3
    assert len(sent.on("groups_membersgroup")) == 1
    assert len(sent.on("members_member")) == 1


def test_a_member_is_shown_from_one_statement(api: ClubClient, club: Club) -> None:
    member = MemberFactory(club=club, email="ann@example.com")

    with statements() as sent:
        response = api.get(f"members/{member.pk}")

    assert response.json()["email"] == "ann@example.com"
    assert len(sent.on("members_member")) == 1


def test_patching_a_members_properties_looks_up_no_other_member(
    api: ClubClient, club: Club
) -> None:
    member = MemberFactory(club=club, email="ann@example.com", msisdn="4740769126")

    with statements() as sent:
        response = api.patch(f"members/{member.pk}", {"properties": {"tier": "gold"}})

    assert response.status_code == 200
    clash_checks = [sql for sql in sent.on("members_member") if "LIMIT 1" in sql]
    assert clash_checks == []


def test_changing_one_identifier_looks_up_that_one_alone_and_refuses_a_taken_one(
    api: ClubClient, club: Club
) -> None:
    MemberFactory(club=club, email="bob@example.com", msisdn="4790000000")
    member = MemberFactory(club=club, email="ann@example.com", msisdn="4740769126")

    with statements() as sent:
        taken = api.patch(f"members/{member.pk}", {"msisdn": "+47 900 00 000"})
    same_email = api.put(f"members/{member.pk}", {"email": "ANN@example.com"})

    assert taken.status_code == 422
    assert taken.json()["details"] == {
        "msisdn": [{"error": "taken", "options": {"value": "4790000000"}}]
    }
    assert len([sql for sql in sent.on("members_member") if "LIMIT 1" in sql]) == 1
    assert same_email.status_code == 200
    assert same_email.json()["email"] == "ann@example.com"


def test_patching_a_member_moves_it_between_automatic_groups_in_one_evaluation(
    api: ClubClient, club: Club
) -> None:
    low = services.create_group(
        club=club, name="Low", audience_conditions=[cond("number", "points", "lt", 100)]
    )
    high = services.create_group(
        club=club, name="High", audience_conditions=[cond("number", "points", "gte", 100)]
    )
    member = MemberFactory(club=club, email="ann@example.com")
    api.patch(f"members/{member.pk}", {"properties": {"points": 10}})

    with statements() as sent:
        response = api.patch(f"members/{member.pk}", {"properties": {"points": 500}})

    assert response.status_code == 200
    in_groups = set(
        Membership.objects.filter(member_id=member.pk).values_list("group_id", flat=True)
    )
    assert {low.pk, high.pk} & in_groups == {high.pk}
    counts = dict(
        MembersGroup.objects.filter(pk__in=[low.pk, high.pk]).values_list("pk", "members_count")
    )
    assert counts == {low.pk: 0, high.pk: 1}
    # The rules and the member's memberships of those groups are read in one statement.
    evaluations = [sql for sql in sent if sql.startswith("SELECT EXISTS")]
    assert len(evaluations) == 1
    reads = [sql for sql in sent.on("groups_membership") if sql.startswith("SELECT")]
    assert reads == evaluations
    assert Member.objects.get(pk=member.pk).properties["points"] == 500


def test_a_key_set_page_reads_whether_members_come_before_it_in_its_one_statement(
    api: ClubClient, club: Club
) -> None:
    group = GroupFactory(club=club)
    members = MemberFactory.create_batch(3, club=club)
    services.add_member_ids(group=group, member_ids=[m.pk for m in members], source="api")
    path = f"members_groups/{group.pk}/members"

    with statements() as sent:
        middle = api.get(path, {"per_page": 1, "after_id": members[0].pk}).json()
    start = api.get(path, {"per_page": 1, "after_id": 0}).json()
    beyond = api.get(path, {"per_page": 1, "after_id": members[2].pk}).json()

    assert [member["id"] for member in middle["members"]] == [members[1].pk]
    assert middle["pagination_info"]["is_first_page"] is False
    assert middle["pagination_info"]["next_after_id"] == members[1].pk
    assert len(sent.on("groups_membership")) == 1
    assert start["pagination_info"]["is_first_page"] is True
    assert (beyond["members"], beyond["pagination_info"]["is_first_page"]) == ([], False)


@pytest.mark.parametrize("method", ["post", "delete"])
def test_a_bulk_change_by_email_reads_the_members_once_and_locks_them_as_it_reads(
    api: ClubClient, club: Club, method: str
) -> None:
    group = GroupFactory(club=club)
    members = [MemberFactory(club=club, email=f"m{n}@example.com") for n in range(3)]
    if method == "delete":
        services.add_member_ids(group=group, member_ids=[m.pk for m in members], source="api")
    body = {"identifier_type": "email", "identifiers": ["M0@example.com", "m2@example.com"]}

    with statements() as sent:
        report = getattr(api, method)(f"members_groups/{group.pk}/members", body).json()

    assert report["members_group"]["members_count"] == (2 if method == "post" else 1)
    # The lookup by email is the only read of the members: the membership rows are written
    # from the ids it found, and on PostgreSQL it share-locks them (id order) as it reads.
    [lookup] = sent.on("members_member")
    assert lookup.endswith("ORDER BY id FOR SHARE" if connection.vendor == "postgresql" else "id")
