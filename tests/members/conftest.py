"""Fixtures of the member admin's tests."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from django.test import Client


@pytest.fixture
def staff_client(staff_client_with: Callable[..., Client]) -> Client:
    """A staff member who manages ``club`` only, with the member permissions."""
    return staff_client_with(
        "members.view_member",
        "members.add_member",
        "members.change_member",
        "members.delete_member",
    )
