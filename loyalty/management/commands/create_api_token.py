"""``create_api_token <club_slug>``: create an API token and print it once, on the last line."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from loyalty.models import Club
from loyalty.permits import ALL_PERMITS
from loyalty.services import create_api_token

ALL = "all"


def parse_permits(value: str) -> list[str]:
    """``all`` or a comma-separated list of permit names, checked against the known ones."""
    if value.strip() == ALL:
        return list(ALL_PERMITS)
    permits = [permit.strip() for permit in value.split(",") if permit.strip()]
    if not permits:
        raise CommandError(f"--permits needs {ALL!r} or a comma-separated list of permits.")
    unknown = [permit for permit in permits if permit not in ALL_PERMITS]
    if unknown:
        raise CommandError(
            f"Unknown permits: {', '.join(unknown)}. "
            f"Use {ALL!r} or any of: {', '.join(ALL_PERMITS)}."
        )
    return permits


class Command(BaseCommand):
    help = (
        "Create an API token for a club. The raw token is printed once, alone on the last "
        "line of the output (scripts may take it with `tail -n 1`); only its hash is stored."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("club_slug", help="The slug of the club the token belongs to.")
        parser.add_argument("--name", default="Command line", help="A label for the token.")
        parser.add_argument(
            "--permits",
            default=ALL,
            help=f"{ALL!r} (the default) or a comma-separated list, e.g. "
            "BL:Api:MembersGroups:List,BL:Api:MembersGroups:Show.",
        )

    def handle(self, *args: Any, club_slug: str, name: str, permits: str, **options: Any) -> None:
        try:
            club = Club.objects.get(slug=club_slug)
        except Club.DoesNotExist:
            raise CommandError(
                f"No club with slug {club_slug!r}; create it with `create_club {club_slug}`."
            ) from None
        token, raw = create_api_token(club=club, name=name, permits=parse_permits(permits))
        self.stdout.write(
            self.style.SUCCESS(
                f'Created API token "{token.name}" (id {token.pk}) for club {club.slug} '
                f"with {len(token.permits)} permits:"
            )
        )
        for permit in token.permits:
            self.stdout.write(f"  {permit}")
        self.stdout.write(
            "Send it as the X-Client-Authorization header. It is shown only now; "
            "only its hash is stored:"
        )
        self.stdout.write(raw)
