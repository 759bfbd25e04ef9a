"""The seed_demo and prepare_demo commands: realistic, consistent, repeatable demo data."""

from __future__ import annotations

import re
from datetime import timedelta
from io import StringIO

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from django.utils import timezone

from groups.integrity import discrepancy
from groups.models import ALL_MEMBERS_KEY, MembersGroup, Membership
from groups.services import create_group
from loyalty.models import ApiToken, Club, hash_token
from loyalty.permits import ALL_PERMITS
from members.models import Member
from members.normalize import normalize_email, normalize_msisdn
from members.services import delete_member
from tests.helpers import assert_consistent, cond

pytestmark = pytest.mark.django_db

DEMO_GROUPS = {
    "All members",
    "Red",
    "Blue",
    "Gold customers",
    "Newsletter",
    "Oslo stores",
    "Beta testers",
    "Oslo gold customers",
    "Birthday within a week",
}


def seed(*args: str) -> str:
    out = StringIO()
    call_command("seed_demo", *args, stdout=out)
    return out.getvalue()


def assert_exact(club: Club) -> None:
    """Every group's count equals its rows, and automatic groups equal their rules."""
    for group in MembersGroup.objects.filter(club=club).select_related("club", "audience"):
        found = discrepancy(group)
        assert found.ok, f"{group.name}: {found.describe()}"
        assert_consistent(group)


def test_seed_demo_creates_the_club_with_realistic_members_and_exact_groups() -> None:
    output = seed("--members", "300", "--batch-size", "120")

    club = Club.objects.get(slug="demo")
    members = list(Member.objects.filter(club=club))
    assert len(members) == 300
    emails = [m.email for m in members if m.email]
    msisdns = [m.msisdn for m in members if m.msisdn]
    assert len(emails) == len(set(emails)) > 250
    assert len(msisdns) == len(set(msisdns)) > 250
    assert all(normalize_email(e) == e for e in emails)
    assert all(normalize_msisdn(m) == m for m in msisdns)
    assert all(m.email or m.msisdn for m in members)
    member = members[0]
    assert {"first_name", "last_name", "birthday", "gender", "language", "interests"} <= set(
        member.properties
    )
    assert isinstance(member.properties["interests"], list)
    assert set(member.consents["email_marketing"]) == {"status", "updated_at"}
    all_members = MembersGroup.objects.get(club=club, system_key=ALL_MEMBERS_KEY)
    assert all_members.members_count == 300
    assert Membership.objects.filter(group=all_members).count() == 300
    groups = MembersGroup.objects.filter(club=club)
    assert set(groups.values_list("name", flat=True)) == DEMO_GROUPS
    assert all(g.members_count > 0 for g in groups.exclude(name="Birthday within a week"))
    assert_exact(club)
    assert "Done in" in output


def test_seed_demo_spreads_sign_ups_over_two_years_rising_with_the_id() -> None:
    seed("--members", "300", "--batch-size", "120")

    rows = list(Member.objects.order_by("id").values_list("created_at", "updated_at"))
    created = [c for c, _ in rows]
    now = timezone.now()
    assert len(set(created)) == 300
    assert created == sorted(created)
    assert created[0] < now - timedelta(days=700)
    assert created[-1] > now - timedelta(days=30)
    assert all(c <= u <= now for c, u in rows)


def test_seed_demo_run_again_adds_nothing() -> None:
    seed("--members", "300")
    emails = set(Member.objects.values_list("email", flat=True))

    output = seed("--members", "300")

    assert "nothing to add" in output
    assert Member.objects.count() == 300
    assert set(Member.objects.values_list("email", flat=True)) == emails
    assert MembersGroup.objects.count() == len(DEMO_GROUPS)
    assert_exact(Club.objects.get(slug="demo"))


def test_seed_demo_adds_only_the_missing_members_even_after_deletions() -> None:
    seed("--members", "200", "--batch-size", "80")
    for member in Member.objects.order_by("id")[150:160]:
        delete_member(member=member, source="admin")

    output = seed("--members", "250", "--batch-size", "80")

    assert "adding the missing 60" in output
    club = Club.objects.get(slug="demo")
    assert Member.objects.filter(club=club).count() == 250
    assert MembersGroup.objects.get(club=club, system_key=ALL_MEMBERS_KEY).members_count == 250
    assert_exact(club)


def test_seed_demo_keeps_rules_on_sign_up_time_exact(club: Club) -> None:
    recent = create_group(
        club=club,
        name="Joined this month",
        audience_conditions=[cond("date", "created_at", "within_last_days", 30)],
    )

    seed("--club", club.slug, "--members", "200", "--batch-size", "50")

    recent.refresh_from_db()
    assert 0 < recent.members_count < 50
    assert_exact(club)


def test_seed_demo_is_reproducible() -> None:
    seed("--club", "one", "--members", "40")
    seed("--club", "two", "--members", "40")

    def data(slug: str) -> list[tuple[object, ...]]:
        return list(
            Member.objects.filter(club__slug=slug)
            .order_by("id")
            .values_list("email", "msisdn", "properties", "subunit_ids")
        )

    assert data("one") == data("two")


def test_seed_demo_fills_an_existing_club(club: Club) -> None:
    seed("--club", club.slug, "--members", "30")

    assert Club.objects.count() == 1
    assert Member.objects.filter(club=club).count() == 30


def test_seed_demo_refuses_a_bad_number() -> None:
    with pytest.raises(CommandError, match="--members"):
        seed("--members", "-1")


def test_prepare_demo_seeds_creates_an_admin_and_prints_a_working_token() -> None:
    out = StringIO()
    call_command(
        "prepare_demo", "--members", "25", "--base-url", "http://127.0.0.1:9000/", stdout=out
    )

    output = out.getvalue()
    club = Club.objects.get(slug="demo")
    assert Member.objects.filter(club=club).count() == 25
    password = re.search(r"user admin, password (\S+)", output)
    assert password is not None
    admin = get_user_model().objects.get(username="admin")
    assert admin.is_superuser
    assert admin.check_password(password.group(1))
    raw = re.search(r"API token .*: (\S+)$", output, re.MULTILINE)
    assert raw is not None
    token = ApiToken.objects.get(club=club)
    assert token.key_hash == hash_token(raw.group(1))
    assert token.permits == list(ALL_PERMITS)
    assert "http://127.0.0.1:9000/admin/" in output
    assert "http://127.0.0.1:9000/v3/demo/" in output


def test_prepare_demo_run_again_keeps_the_data_and_the_admin() -> None:
    call_command("prepare_demo", "--members", "25", stdout=StringIO())
    out = StringIO()

    call_command("prepare_demo", "--members", "25", stdout=out)

    assert "not seeding" in out.getvalue()
    assert "password" in out.getvalue()
    assert Member.objects.count() == 25
    assert get_user_model().objects.filter(is_superuser=True).count() == 1
    assert ApiToken.objects.count() == 2
