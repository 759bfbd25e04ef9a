"""The create_club and create_api_token commands: set-up without the admin."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from groups.models import ALL_MEMBERS_KEY, MembersGroup
from loyalty.models import ApiToken, Club, hash_token
from loyalty.permits import ALL_PERMITS, GROUPS_LIST, GROUPS_SHOW

pytestmark = pytest.mark.django_db


def run(*args: str) -> list[str]:
    out = StringIO()
    call_command(*args, stdout=out)
    return out.getvalue().splitlines()


def test_create_club_creates_the_club_with_its_all_members_group() -> None:
    output = run("create_club", "acme", "--name", "Acme Loyalty")

    club = Club.objects.get(slug="acme")
    assert club.name == "Acme Loyalty"
    group = MembersGroup.objects.get(club=club, system_key=ALL_MEMBERS_KEY)
    assert group.system
    assert group.members_count == 0
    assert "acme" in output[-1]


def test_create_club_without_a_name_uses_the_slug() -> None:
    run("create_club", "plain")

    assert Club.objects.get(slug="plain").name == "plain"


def test_create_club_refuses_a_taken_slug(club: Club) -> None:
    with pytest.raises(CommandError, match="slug") as excinfo:
        run("create_club", club.slug, "--name", "Again")

    assert club.slug in str(excinfo.value)
    assert Club.objects.filter(slug=club.slug).count() == 1


@pytest.mark.parametrize(("slug", "timezone"), [("not a slug!", "UTC"), ("ok", "Mars/Base")])
def test_create_club_refuses_an_invalid_slug_or_time_zone(slug: str, timezone: str) -> None:
    with pytest.raises(CommandError, match="Cannot create club"):
        run("create_club", slug, "--timezone", timezone)

    assert not Club.objects.exists()


def test_create_api_token_prints_the_raw_token_alone_on_the_last_line_and_stores_its_hash(
    club: Club,
) -> None:
    output = run("create_api_token", club.slug, "--name", "CRM sync")

    raw = output[-1]
    assert raw == raw.strip()
    assert " " not in raw
    assert raw.startswith("mgs_")
    token = ApiToken.objects.get(club=club)
    assert token.name == "CRM sync"
    assert token.key_hash == hash_token(raw)
    assert token.key_hash != raw
    assert raw[:12] == token.prefix
    assert all(raw not in line for line in output[:-1])


def test_create_api_token_grants_all_permits_by_default(club: Club) -> None:
    run("create_api_token", club.slug)

    assert ApiToken.objects.get(club=club).permits == list(ALL_PERMITS)


def test_create_api_token_honours_a_list_of_permits(club: Club) -> None:
    output = run("create_api_token", club.slug, "--permits", f"{GROUPS_LIST}, {GROUPS_SHOW}")

    token = ApiToken.objects.get(club=club)
    assert token.permits == [GROUPS_LIST, GROUPS_SHOW]
    assert token.key_hash == hash_token(output[-1])


def test_create_api_token_refuses_an_unknown_permit_and_creates_nothing(club: Club) -> None:
    with pytest.raises(CommandError, match="Unknown permits: BL:Api:Nope:List"):
        run("create_api_token", club.slug, "--permits", f"{GROUPS_LIST},BL:Api:Nope:List")

    assert not ApiToken.objects.exists()


def test_create_api_token_refuses_an_empty_permit_list(club: Club) -> None:
    with pytest.raises(CommandError, match="--permits"):
        run("create_api_token", club.slug, "--permits", " , ")


def test_create_api_token_refuses_an_unknown_club() -> None:
    with pytest.raises(CommandError, match="No club with slug 'ghost'"):
        run("create_api_token", "ghost")

    assert not ApiToken.objects.exists()


def test_each_token_is_new_and_only_its_own_hash_matches(club: Club) -> None:
    first = run("create_api_token", club.slug)[-1]
    second = run("create_api_token", club.slug)[-1]

    assert first != second
    hashes = set(ApiToken.objects.filter(club=club).values_list("key_hash", flat=True))
    assert hashes == {hash_token(first), hash_token(second)}
