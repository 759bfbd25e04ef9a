"""Browser tests: Playwright drives Debian's Chromium against a live server of the app.

Playwright's own browser download cannot work here, so Chromium comes from the system
(``scripts/chromium`` installs it); ``CHROMIUM`` names another binary. Every flow saves
screenshots under ``test-output/screenshots``; with ``UPDATE_SCREENSHOTS=1`` they are also
copied to ``docs/screenshots``, the set docs/admin.md shows.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from playwright.sync_api import Browser, Locator, Page, sync_playwright

from loyalty.models import Club
from members.models import Member
from members.services import bulk_create_members
from tests.factories import ClubFactory

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
SHOTS = ROOT / "test-output" / "screenshots"
DOCS_SHOTS = ROOT / "docs" / "screenshots"
# The flags a root, offline, screenless machine needs (docs/architecture.md, the tests).
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
PASSWORD = "correct horse battery staple"
STAFF_PERMISSIONS = [
    "groups.add_membersgroup",
    "groups.change_membersgroup",
    "groups.delete_membersgroup",
    "groups.view_membersgroup",
    "members.view_member",
    "audiences.view_audience",
]


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: run scripts/chromium, or set CHROMIUM")
    with pytest.MonkeyPatch.context() as patch, sync_playwright() as playwright:
        # Playwright's sync API runs an event loop in this thread while the module's tests
        # run; their ORM calls between browser steps are synchronous and safe there.
        patch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser: Browser, live_server: object) -> Iterator[Page]:
    viewport = {"width": 1280, "height": 900}
    context = browser.new_context(base_url=str(live_server), viewport=viewport)
    page = context.new_page()
    page.set_default_timeout(20_000)
    yield page
    context.close()


@pytest.fixture
def red(transactional_db: None) -> Club:
    """A club with 600 members: member1@red.example ... member600@red.example."""
    club = ClubFactory(slug="red-club", name="Red Club")
    bulk_create_members(
        club=club,
        members=[
            Member(
                email=f"member{n}@red.example",
                properties={"first_name": "Ola" if n % 3 == 0 else "Kari"},
            )
            for n in range(1, 601)
        ],
        source="system",
    )
    return club


@pytest.fixture
def blue(transactional_db: None) -> Club:
    return ClubFactory(slug="blue-club", name="Blue Club")


@pytest.fixture
def log_in(page: Page) -> Callable[[str], None]:
    def log_in(username: str) -> None:
        page.goto("/admin/login/")
        page.fill("#id_username", username)
        page.fill("#id_password", PASSWORD)
        page.click("input[type=submit]")
        page.wait_for_selector("#user-tools")

    return log_in


@pytest.fixture
def staff(red: Club, blue: Club) -> str:
    """A staff member who manages the Red Club only."""
    user = get_user_model().objects.create_user("carol", password=PASSWORD, is_staff=True)
    for permission in STAFF_PERMISSIONS:
        app_label, codename = permission.split(".")
        user.user_permissions.add(
            Permission.objects.get(content_type__app_label=app_label, codename=codename)
        )
    red.managers.add(user)
    return "carol"


@pytest.fixture
def superuser(red: Club, blue: Club) -> str:
    get_user_model().objects.create_superuser("root", password=PASSWORD)
    return "root"


@pytest.fixture
def shot(page: Page) -> Callable[..., None]:
    """Save a screenshot of the whole page, or of one ``part`` of it, as ``<name>.png``."""

    def shot(name: str, part: Locator | None = None) -> None:
        SHOTS.mkdir(parents=True, exist_ok=True)
        path = SHOTS / f"{name}.png"
        if part is None:
            page.screenshot(path=path, full_page=True)
        else:
            part.screenshot(path=path)
        if os.environ.get("UPDATE_SCREENSHOTS") == "1":
            DOCS_SHOTS.mkdir(parents=True, exist_ok=True)
            shutil.copy(path, DOCS_SHOTS / path.name)

    return shot
