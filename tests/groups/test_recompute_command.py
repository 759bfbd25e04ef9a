"""The recompute_groups command: re-computes, re-counts, and --check finds corruption."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.management import CommandError, call_command

from groups import services
from groups.models import MembersGroup, Membership
from loyalty.models import Club
from tests.factories import GroupFactory, MemberFactory
from tests.helpers import cond

pytestmark = pytest.mark.django_db


@pytest.fixture
def gold(club: Club) -> MembersGroup:
    MemberFactory(club=club, email="ann@gold.example")
    MemberFactory(club=club, email="bob@plain.example")
    return services.create_group(
        club=club, name="Gold", audience_conditions=[cond("string", "email", "match", "@gold")]
    )


def test_check_passes_when_every_group_is_exact(
    gold: MembersGroup, capsys: pytest.CaptureFixture[str]
) -> None:
    GroupFactory(club=gold.club)
    call_command("recompute_groups", "--check")
    assert "groups are exact" in capsys.readouterr().out


def test_check_finds_a_corrupted_count_and_membership_and_exits_1(
    club: Club, gold: MembersGroup, capsys: pytest.CaptureFixture[str]
) -> None:
    MembersGroup.objects.filter(pk=gold.pk).update(members_count=7)
    Membership.objects.filter(group=gold).delete()

    with pytest.raises(CommandError) as excinfo:
        call_command("recompute_groups", "--check", "--club", club.slug)

    assert excinfo.value.returncode == 1
    out = capsys.readouterr().out
    assert f"Gold ({gold.pk}): members_count 7 but 0 rows; 1 matching members missing" in out


def test_recompute_repairs_what_check_found(club: Club, gold: MembersGroup) -> None:
    plain = club.member_set.get(email="bob@plain.example")
    Membership.objects.create(club=club, group=gold, member=plain)

    call_command("recompute_groups", "--group", str(gold.pk))

    call_command("recompute_groups", "--check")
    gold.refresh_from_db()
    assert gold.members_count == 1
    assert not Membership.objects.filter(group=gold, member=plain).exists()


def test_recompute_refuses_an_unknown_club() -> None:
    with pytest.raises(CommandError, match="No club"):
        call_command("recompute_groups", "--club", "nope")


def test_the_relative_dates_run_refreshes_only_day_relative_rules(
    club: Club, gold: MembersGroup, capsys: pytest.CaptureFixture[str]
) -> None:
    services.create_group(
        club=club,
        name="Recent",
        audience_conditions=[cond("date", "created_at", "within_last_days", 7)],
    )
    call_command("recompute_groups", "--relative-dates")
    assert "Refreshed 1 groups." in capsys.readouterr().out


def test_check_tells_a_queued_recomputation_from_drift(
    club: Club, settings: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    # Queued, not run: the database backend without its worker.
    settings.TASKS = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend"}}
    settings.RECOMPUTE_INLINE_MAX = 0
    MemberFactory(club=club, email="ann@gold.example")
    gold = services.create_group(
        club=club, name="Gold", audience_conditions=[cond("string", "email", "match", "@gold")]
    )
    gold.refresh_from_db()
    assert gold.recomputing

    call_command("recompute_groups", "--check", "--club", club.slug)

    out = capsys.readouterr().out
    assert f"Gold ({gold.pk}): recomputation pending (1 matching members missing)" in out
    assert "1 wait for their queued recomputation" in out

    # Pending for longer than a task takes to come: lost, and a difference.
    settings.RECOMPUTE_STALE_SECONDS = 0
    with pytest.raises(CommandError) as lost:
        call_command("recompute_groups", "--check", "--club", club.slug)
    assert lost.value.returncode == 1
    assert (
        f"Gold ({gold.pk}): recomputation pending for over 0 s, its task lost? "
        "1 matching members missing" in capsys.readouterr().out
    )

    settings.RECOMPUTE_STALE_SECONDS = 900
    MembersGroup.objects.filter(pk=gold.pk).update(members_count=3)
    with pytest.raises(CommandError) as excinfo:
        call_command("recompute_groups", "--check", "--club", club.slug)
    assert excinfo.value.returncode == 1
    assert f"Gold ({gold.pk}): members_count 3 but 0 rows" in capsys.readouterr().out
