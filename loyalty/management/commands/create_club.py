"""``create_club <slug> --name NAME``: create a loyalty club without the admin."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from loyalty.services import create_club


def describe_validation_error(exc: ValidationError) -> str:
    """Flatten a model validation error into one line: ``field: message; field: message``."""
    if not hasattr(exc, "error_dict"):
        return " ".join(exc.messages)
    return "; ".join(
        f"{field}: {' '.join(messages)}" for field, messages in exc.message_dict.items()
    )


class Command(BaseCommand):
    help = 'Create a loyalty club and its system group "All members".'

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("slug", help="The club's unique slug, used in every API path.")
        parser.add_argument("--name", help="The club's display name (default: the slug).")
        parser.add_argument(
            "--timezone", default="UTC", help="The club's IANA time zone (default: UTC)."
        )

    def handle(
        self, *args: Any, slug: str, name: str | None, timezone: str, **options: Any
    ) -> None:
        try:
            club = create_club(slug=slug, name=name or slug, timezone_name=timezone)
        except ValidationError as exc:
            raise CommandError(
                f"Cannot create club {slug!r}: {describe_validation_error(exc)}"
            ) from exc
        self.stdout.write(
            self.style.SUCCESS(
                f'Created club "{club.name}" (slug {club.slug}, id {club.pk}) '
                'with its "All members" group.'
            )
        )
