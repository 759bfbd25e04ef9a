"""``seed_demo``: a demo club with realistic members and a few groups, in seconds."""

from __future__ import annotations

import random
import time
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from itertools import accumulate
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import connection, transaction
from django.utils import timezone

from groups.models import MembersGroup, Source
from groups.services import add_member_ids, create_group
from loyalty.db import array_param, in_array
from loyalty.models import Club
from loyalty.services import create_club
from members.models import ChannelStatus, Member
from members.services import bulk_create_members

SEED = 42
ACTOR = "seed_demo"
# Each msisdn ends in seven digits that are a bijection of the member's sequence number,
# which keeps them unique, whatever the country prefix, up to this many members per club.
MAX_MEMBERS = 10_000_000
MSISDN_MULTIPLIER = 7_919  # a prime, so coprime with 10**7
MSISDN_OFFSET = 3_141_592
CREATED_SPREAD = timedelta(days=730)


def words(text: str) -> tuple[str, ...]:
    return tuple(text.split())


FEMALE_NAMES = words(
    "Emma Nora Ingrid Sofie Maja Olivia Ella Sara Ida Hanna Astrid Sigrid Frida Marte "
    "Kari Anne Ingeborg Silje Thea Linnea Wilma Maria Aisha Fatima Anna Julia Zofia Mei "
    "Priya Lucia Amira Elena Solveig Tiril Åse Mia"
)
MALE_NAMES = words(
    "Jakob Emil Noah Oliver Filip William Lucas Liam Henrik Ola Lars Magnus Sindre Eirik "
    "Håkon Knut Per Bjørn Anders Tobias Mohammed Ali Jonas Mateusz Piotr Ahmed Omar Luca "
    "Marco Wei Arjun Diego Even Sverre Ørjan Kristian"
)
LAST_NAMES = words(
    "Hansen Johansen Olsen Larsen Andersen Pedersen Nilsen Kristiansen Jensen Karlsen "
    "Johnsen Pettersen Eriksen Berg Haugen Hagen Johannessen Andreassen Jacobsen Dahl "
    "Jørgensen Halvorsen Henriksen Lund Sørensen Jakobsen Moen Gundersen Iversen Strand "
    "Solberg Svendsen Eide Knutsen Martinsen Paulsen Bakken Kristoffersen Mathisen Lie "
    "Nowak Kowalski Nguyen Khan Rossi Müller Svensson Lindqvist Nielsen Virtanen Garcia "
    "Smith Øvrebø Aas Brekke Sæther"
)
FIRST_NAMES = {"female": FEMALE_NAMES, "male": MALE_NAMES, "other": FEMALE_NAMES + MALE_NAMES}
# Addresses under the reserved example domains (RFC 2606), so no real inbox is ever named.
EMAIL_DOMAINS = ("example.com", "example.net", "example.org", "mail.example.com")
LANGUAGES = ("nb", "en", "sv", "da", "pl", "de", "ar", "nn")
LANGUAGE_CUMULATIVE = tuple(accumulate((62, 12, 7, 5, 5, 3, 3, 3)))
INTERESTS = words(
    "running cooking fashion football hiking gaming travel wine books music skiing yoga "
    "photography gardening cycling interior"
)
CITIES = (
    ("0150", "Oslo"),
    ("0558", "Oslo"),
    ("0661", "Oslo"),
    ("5003", "Bergen"),
    ("7010", "Trondheim"),
    ("4006", "Stavanger"),
    ("9008", "Tromsø"),
    ("3015", "Drammen"),
    ("1607", "Fredrikstad"),
    ("4608", "Kristiansand"),
)
STORES = tuple(range(101, 125))
OSLO_STORES = frozenset(range(101, 107))
SUBUNITS = (1, 2, 3, 4)
BIRTHDAY_FIRST = date(1940, 1, 1).toordinal()
BIRTHDAY_DAYS = date(2009, 1, 1).toordinal() - BIRTHDAY_FIRST
CONSENT_SECONDS = int(CREATED_SPREAD.total_seconds())
GOLD_POINTS = 4_000


@dataclass(frozen=True)
class DemoGroup:
    """A group of the demo club; ``conditions`` make it automatic."""

    key: str
    name: str
    type: str
    description: str
    conditions: list[dict[str, Any]] = field(default_factory=list)


def _leaf(type_: str, field_: str, operator: str, value: Any) -> dict[str, Any]:
    return {
        "condition_group": "member_properties",
        "type": type_,
        "field": field_,
        "operator": operator,
        "value": value,
    }


MANUAL_GROUPS = (
    DemoGroup("red", "Red", "Color", "Members who picked red in the spring campaign."),
    DemoGroup("blue", "Blue", "Color", "Members who picked blue in the spring campaign."),
    DemoGroup("gold", "Gold customers", "Tier", f"Members with {GOLD_POINTS} points or more."),
    DemoGroup("newsletter", "Newsletter", "Marketing", "Signed up for the monthly newsletter."),
    DemoGroup("oslo", "Oslo stores", "Store", "Members with a favourite store in Oslo."),
    DemoGroup("beta", "Beta testers", "Program", "Trying the new app before everyone else."),
)
# Created while the club is still empty, so new members join them as they are inserted.
AUTOMATIC_GROUPS = (
    DemoGroup(
        "oslo_gold",
        "Oslo gold customers",
        "Segment",
        "Gold customers living in Oslo (follows the Gold customers group).",
        # The group ids are filled in with the Gold customers group's when it is created.
        [_leaf("string", "city", "eq", "Oslo"), _leaf("array", "members_group_ids", "any", [])],
    ),
    DemoGroup(
        "birthdays",
        "Birthday within a week",
        "Campaign",
        "Members whose birthday is in the next seven days (refreshed daily).",
        [_leaf("date", "birthday", "anniversary_within_days", 7)],
    ),
)


def ascii_fold(name: str) -> str:
    """``Bjørn`` -> ``bjorn``, ``Sæther`` -> ``saether``: names as typed in an address."""
    name = name.lower().replace("ø", "o").replace("æ", "ae")
    return unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()


FOLDED = {name: ascii_fold(name) for name in {*FEMALE_NAMES, *MALE_NAMES, *LAST_NAMES}}
# Model.__init__ has a fast path for positional values: half the cost over 100,000 rows.
MEMBER_ATTNAMES = tuple(f.attname for f in Member._meta.concrete_fields)


def new_member(**values: Any) -> Member:
    return Member(*[values.get(name) for name in MEMBER_ATTNAMES])


class FakeMembers:
    """Deterministic fake members: number ``n`` always gets the same email and msisdn."""

    def __init__(self, rng: random.Random, now: datetime) -> None:
        self.rng = rng
        self.now_ts = now.timestamp()

    def email(self, n: int, first: str, last: str) -> str:
        first, last = FOLDED[first], FOLDED[last]
        # The trailing sequence number makes the address unique; the rest only looks real.
        local = (f"{first}.{last}", f"{first}{last}", f"{first[0]}.{last}")[n % 3]
        return f"{local}{n}@{EMAIL_DOMAINS[n % len(EMAIL_DOMAINS)]}"

    def msisdn(self, n: int) -> str:
        digits = f"{(n * MSISDN_MULTIPLIER + MSISDN_OFFSET) % 10_000_000:07d}"
        country = self.rng.random()
        if country < 0.85:
            return f"47{'49'[n % 2]}{digits}"  # Norwegian mobile: 4xxxxxxx or 9xxxxxxx
        if country < 0.95:
            return f"467{'0236'[n % 4]}{digits}"  # Swedish mobile: 07x xxx xx xx
        return f"45{'2345'[n % 4]}{digits}"  # Danish mobile

    def consent(self, status: bool) -> dict[str, Any]:
        when = self.now_ts - self.rng.random() * CONSENT_SECONDS
        return {"status": status, "updated_at": datetime.fromtimestamp(when, UTC).isoformat()}

    def status(self, present: bool, consented: bool) -> str:
        if not present:
            return ChannelStatus.DISABLED
        roll = self.rng.random()
        if roll < 0.03:
            return ChannelStatus.HARD_BOUNCED
        if roll < 0.05:
            return ChannelStatus.SOFT_BOUNCED
        if roll < 0.10:
            return ChannelStatus.UNSUBSCRIBED
        return ChannelStatus.ENABLED if consented else ChannelStatus.DISABLED

    def picks(self, items: Sequence[Any], mean: int) -> list[Any]:
        """About ``mean`` distinct items (0 to ``2 * mean``), in the order of ``items``."""
        random_ = self.rng.random
        chosen = {int(random_() * len(items)) for _ in range(int(random_() * (2 * mean + 1)))}
        return [items[i] for i in sorted(chosen)]

    def build(self, n: int) -> tuple[Member, list[str]]:
        """Member number ``n`` and the keys of the manual demo groups it belongs to."""
        random_ = self.rng.random
        roll = random_()
        gender = "female" if roll < 0.49 else "male" if roll < 0.98 else "other"
        names = FIRST_NAMES[gender]
        first = names[int(random_() * len(names))]
        last = LAST_NAMES[int(random_() * len(LAST_NAMES))]
        roll = random_()
        # Most members give both; some only one of the two (at least one is required).
        email = self.email(n, first, last) if roll < 0.93 else None
        msisdn = self.msisdn(n) if roll > 0.10 else None
        email_consent = email is not None and random_() < 0.62
        sms_consent = msisdn is not None and random_() < 0.45
        postal_code, city = CITIES[int(random_() * len(CITIES))]
        points = int(self.rng.expovariate(1 / 1_400))
        favorite_stores = self.picks(STORES, 1)
        language = self.rng.choices(LANGUAGES, cum_weights=LANGUAGE_CUMULATIVE)[0]
        member = new_member(
            email=email,
            msisdn=msisdn,
            properties={
                "first_name": first,
                "last_name": last,
                "birthday": date.fromordinal(
                    BIRTHDAY_FIRST + int(random_() * BIRTHDAY_DAYS)
                ).isoformat(),
                "gender": gender,
                "language": language,
                "interests": self.picks(INTERESTS, 2),
                "postal_code": postal_code,
                "city": city,
                "points": points,
            },
            consents={
                "email_marketing": self.consent(email_consent),
                "sms_marketing": self.consent(sms_consent),
            },
            email_status=self.status(email is not None, email_consent),
            sms_status=self.status(msisdn is not None, sms_consent),
            push_status=ChannelStatus.ENABLED if random_() < 0.35 else ChannelStatus.DISABLED,
            subunit_ids=[SUBUNITS[int(random_() * len(SUBUNITS))]],
            favorite_stores=favorite_stores,
        )
        keys = []
        roll = random_()
        if roll < 0.20:
            keys.append("red")
        elif roll < 0.35:
            keys.append("blue")
        if points >= GOLD_POINTS:
            keys.append("gold")
        if email_consent and random_() < 0.35:
            keys.append("newsletter")
        if not OSLO_STORES.isdisjoint(favorite_stores):
            keys.append("oslo")
        if random_() < 0.01:
            keys.append("beta")
        return member, keys


def taken(club: Club, column: str, values: list[str]) -> set[str]:
    """The ``values`` of ``column`` (email or msisdn) that members of the club already use."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT {column} FROM {Member._meta.db_table} "
            f"WHERE club_id = %s AND {in_array(column, 'text')}",
            [club.pk, array_param(values)],
        )
        return {row[0] for row in cursor.fetchall()}


def demo_groups(club: Club) -> dict[str, MembersGroup]:
    """The club's demo groups by key, created where missing (automatic ones after manual)."""
    groups: dict[str, MembersGroup] = {}
    for spec in (*MANUAL_GROUPS, *AUTOMATIC_GROUPS):
        automatic = bool(spec.conditions)
        group = MembersGroup.objects.filter(
            club=club, name=spec.name, automatic=automatic, system=False
        ).first()
        if group is None:
            conditions = [
                {**c, "value": [groups["gold"].pk]} if c["field"] == "members_group_ids" else c
                for c in spec.conditions
            ]
            group = create_group(
                club=club,
                name=spec.name,
                type=spec.type,
                description=spec.description,
                audience_conditions=conditions or None,
                actor=ACTOR,
            )
        groups[spec.key] = group
    return groups


class Command(BaseCommand):
    help = (
        "Fill a demo club (created if missing) with realistic members and a few manual and "
        "automatic groups. --members is the number of members the club should have: a club "
        "that has members already gets only the missing ones, so a re-run never duplicates. "
        f"The data comes from the fixed random seed {SEED}: equal runs give equal data."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--club", default="demo", help="The demo club's slug (default demo).")
        parser.add_argument(
            "--members",
            type=int,
            default=10_000,
            help="How many members the club should have (default 10000).",
        )
        parser.add_argument(
            "--batch-size",
            type=int,
            default=5_000,
            help="Members per INSERT and per transaction (default 5000).",
        )

    def handle(self, *args: Any, club: str, members: int, batch_size: int, **options: Any) -> None:
        if not 0 <= members <= MAX_MEMBERS:
            raise CommandError(f"--members must be between 0 and {MAX_MEMBERS:,}.")
        if batch_size < 1:
            raise CommandError("--batch-size must be positive.")
        started = time.perf_counter()
        demo = Club.objects.filter(slug=club).first()
        if demo is None:
            name = f"{club.replace('-', ' ').title()} Club"
            demo = create_club(slug=club, name=name, timezone_name="Europe/Oslo")
            self.stdout.write(f'Created club "{demo.name}" (slug {demo.slug}).')
        groups = demo_groups(demo)
        existing = Member.objects.filter(club=demo).count()
        missing = members - existing
        if missing <= 0:
            self.stdout.write(
                f"Club {demo.slug} already has {existing:,} members "
                f"(asked for {members:,}): nothing to add."
            )
        else:
            if existing:
                self.stdout.write(
                    f"Club {demo.slug} has {existing:,} members; adding the missing {missing:,}."
                )
            self.seed(demo, groups, existing, missing, batch_size, options["verbosity"])
        self.summarise(demo, time.perf_counter() - started)

    def seed(
        self,
        club: Club,
        groups: dict[str, MembersGroup],
        first_number: int,
        count: int,
        batch_size: int,
        verbosity: int,
    ) -> None:
        now = timezone.now()
        fake = FakeMembers(random.Random(SEED + first_number), now)
        manual = {spec.key: groups[spec.key] for spec in MANUAL_GROUPS}
        start = now - CREATED_SPREAD
        # Members added to a club that had some may reuse an address: those are skipped.
        check_taken = first_number > 0
        number, created, generating, inserting = first_number, 0, 0.0, 0.0
        while created < count:
            tick = time.perf_counter()
            batch: list[Member] = []
            keys: list[list[str]] = []
            for _ in range(min(batch_size, count - created)):
                member, member_keys = fake.build(number)
                number += 1
                batch.append(member)
                keys.append(member_keys)
            if check_taken:
                batch, keys = self.without_taken(club, batch, keys)
            # Sign-up times rise with the member id, over the last two years; each member
            # last changed some fixed, scattered share of the time since.
            for i, member in enumerate(batch):
                member.created_at = start + CREATED_SPREAD * ((created + i + 0.5) / count)
                share = ((created + i) * 7_919) % 1_000 / 1_000
                member.updated_at = member.created_at + (now - member.created_at) * share
            tock = time.perf_counter()
            generating += tock - tick
            with transaction.atomic():
                ids = bulk_create_members(
                    club=club, members=batch, source=Source.IMPORT, actor=ACTOR
                )
                for key, group in manual.items():
                    group_ids = [i for i, k in zip(ids, keys, strict=True) if key in k]
                    add_member_ids(
                        group=group, member_ids=group_ids, source=Source.IMPORT, actor=ACTOR
                    )
            inserting += time.perf_counter() - tock
            created += len(batch)
            if verbosity >= 2:
                self.stdout.write(f"  {created:,}/{count:,} members")
        self.stdout.write(
            f"Added {count:,} members: {generating:.2f} s generating, {inserting:.2f} s "
            f"writing ({count / max(generating + inserting, 1e-9):,.0f} members/s)."
        )

    def without_taken(
        self, club: Club, batch: list[Member], keys: list[list[str]]
    ) -> tuple[list[Member], list[list[str]]]:
        emails = taken(club, "email", [m.email for m in batch if m.email])
        msisdns = taken(club, "msisdn", [m.msisdn for m in batch if m.msisdn])
        kept = [
            (member, member_keys)
            for member, member_keys in zip(batch, keys, strict=True)
            if member.email not in emails and member.msisdn not in msisdns
        ]
        return [m for m, _ in kept], [k for _, k in kept]

    def summarise(self, club: Club, elapsed: float) -> None:
        self.stdout.write(f'Club {club.slug} ("{club.name}"): groups and their members')
        for group in MembersGroup.objects.filter(club=club).order_by("-system", "id"):
            kind = "system" if group.system else "automatic" if group.automatic else "manual"
            self.stdout.write(
                f"  {group.name:<24} {kind:<9} id {group.pk:<6} {group.members_count:>9,}"
            )
        self.stdout.write(self.style.SUCCESS(f"Done in {elapsed:.2f} s."))
