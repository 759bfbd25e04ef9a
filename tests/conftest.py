"""Shared fixtures: a club with its system group, and a few members."""

from __future__ import annotations

from typing import Any

import pytest

from groups.models import ALL_MEMBERS_KEY, MembersGroup
from loyalty.models import Club
from tests.factories import ClubFactory


@pytest.fixture(autouse=True)
def immediate_tasks(settings: Any) -> None:
    """Run enqueued tasks at once, in the test's process (STYLE: ImmediateBackend in tests)."""
    settings.TASKS = {"default": {"BACKEND": "django_tasks.backends.immediate.ImmediateBackend"}}


@pytest.fixture
def club(db: None) -> Club:
    return ClubFactory(slug="red-club", name="Red Club")


@pytest.fixture
def other_club(db: None) -> Club:
    return ClubFactory(slug="blue-club", name="Blue Club")


@pytest.fixture
def all_members(club: Club) -> MembersGroup:
    return MembersGroup.objects.get(club=club, system_key=ALL_MEMBERS_KEY)
