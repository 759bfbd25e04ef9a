"""``prepare_demo``: what ``make run`` needs before serving: demo data, an admin, a token."""

from __future__ import annotations

import os
import secrets
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandParser
from django.db import connection
from django.utils import timezone

from loyalty.models import Club
from loyalty.permits import ALL_PERMITS
from loyalty.services import create_api_token

ADMIN_USERNAME = "admin"
# Django's own createsuperuser reads the password from this variable too.
PASSWORD_VARIABLE = "DJANGO_SUPERUSER_PASSWORD"


class Command(BaseCommand):
    help = (
        "Prepare a local demo: seed the demo club when the database has no club yet, create "
        f"the superuser {ADMIN_USERNAME!r} when there is no superuser (password from "
        f"${PASSWORD_VARIABLE}, or generated and printed once), create an API token with all "
        "permits, and print the URLs. Safe to run again: only the token is new each time."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--club", default="demo", help="The demo club's slug (default demo).")
        parser.add_argument(
            "--members", type=int, default=10_000, help="Members to seed (default 10000)."
        )
        parser.add_argument(
            "--base-url",
            default="http://127.0.0.1:8000",
            help="Where the server will listen, for the printed URLs.",
        )

    def handle(self, *args: Any, club: str, members: int, base_url: str, **options: Any) -> None:
        if Club.objects.exists():
            self.stdout.write("The database has clubs already: not seeding.")
        else:
            call_command("seed_demo", club=club, members=members, stdout=self.stdout)
        login = self.ensure_admin()
        demo = Club.objects.filter(slug=club).first() or Club.objects.order_by("slug").first()
        base_url = base_url.rstrip("/")
        lines = [
            "",
            "The Members Groups service is ready.",
            f"  Admin:     {base_url}/admin/",
            f"             {login}",
            f"  API docs:  {base_url}/v3/docs/",
            f"  Database:  {connection.vendor} {connection.settings_dict['NAME']}",
        ]
        if demo is not None:
            _token, raw = create_api_token(
                club=demo,
                name=f"make run {timezone.now():%Y-%m-%d %H:%M:%S}",
                permits=ALL_PERMITS,
            )
            api = f"{base_url}/v3/{demo.slug}/"
            lines += [
                f"  API base:  {api}",
                f"  API token (club {demo.slug}, all permits, a new one each run): {raw}",
                f'  Try:       curl -H "X-Client-Authorization: {raw}" '
                '-H "X-User-Agent: curl" -H "X-Product-Name: demo" '
                f"{api}members_groups",
            ]
        self.stdout.write("\n".join(lines))

    def ensure_admin(self) -> str:
        """Create the admin superuser unless there is one; describe how to log in."""
        users = get_user_model().objects
        if (
            users.filter(is_superuser=True).exists()
            or users.filter(username=ADMIN_USERNAME).exists()
        ):
            return (
                f"log in as an existing superuser (reset a password with "
                f"`.venv/bin/python manage.py changepassword {ADMIN_USERNAME}`)"
            )
        password = os.environ.get(PASSWORD_VARIABLE) or secrets.token_urlsafe(12)
        users.create_superuser(
            username=ADMIN_USERNAME, email="admin@example.com", password=password
        )
        return f"user {ADMIN_USERNAME}, password {password} (shown only now)"
