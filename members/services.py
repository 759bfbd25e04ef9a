"""State changes of members. Group memberships follow through the domain signals."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from loyalty.errors import InvalidParameters
from loyalty.models import Club
from members.models import Member
from members.normalize import InvalidIdentifier, normalize_email, normalize_msisdn
from members.signals import member_deleting, member_saved, members_created

# Fields a caller may set; everything else (id, club, timestamps) is the service's.
MEMBER_FIELDS = (
    "email",
    "msisdn",
    "properties",
    "consents",
    "sms_status",
    "email_status",
    "push_status",
    "subunit_ids",
    "favorite_stores",
)


def normalize_member(member: Member) -> None:
    """Normalise email and msisdn in place; raise ``InvalidParameters`` naming the field."""
    details: dict[str, Any] = {}
    for field, normalize in (("email", normalize_email), ("msisdn", normalize_msisdn)):
        value = getattr(member, field)
        if value in (None, ""):
            setattr(member, field, None)
            continue
        try:
            setattr(member, field, normalize(value))
        except InvalidIdentifier:
            details[field] = [{"error": "invalid", "options": {"value": value}}]
    if not details and member.email is None and member.msisdn is None:
        details["email"] = [{"error": "blank", "options": {"requires": "email or msisdn"}}]
    if details:
        raise InvalidParameters(details=details)


def _check_unique(member: Member) -> None:
    others = Member.objects.filter(club_id=member.club_id).exclude(pk=member.pk)
    details: dict[str, Any] = {}
    for field in ("email", "msisdn"):
        value = getattr(member, field)
        if value is not None and others.filter(**{field: value}).exists():
            details[field] = [{"error": "taken", "options": {"value": value}}]
    if details:
        raise InvalidParameters(details=details)


def _save(member: Member) -> None:
    normalize_member(member)
    _check_unique(member)
    try:
        with transaction.atomic():
            member.save()
    except IntegrityError as exc:
        # A concurrent request took the same email or msisdn between the check and the write.
        raise InvalidParameters.field("email", "taken") from exc


@transaction.atomic
def create_member(*, club: Club, source: str, actor: str = "", **fields: Any) -> Member:
    """Create a member and put it in the groups it belongs to, in one transaction."""
    member = Member(club=club, **{k: v for k, v in fields.items() if k in MEMBER_FIELDS})
    _save(member)
    member_saved.send(sender=Member, member=member, created=True, source=source, actor=actor)
    return member


@transaction.atomic
def update_member(*, member: Member, source: str, actor: str = "", **fields: Any) -> Member:
    """Change a member's fields; automatic groups are re-evaluated for it in the same request."""
    for field, value in fields.items():
        if field in MEMBER_FIELDS:
            setattr(member, field, value)
    _save(member)
    member_saved.send(sender=Member, member=member, created=False, source=source, actor=actor)
    return member


@transaction.atomic
def delete_member(*, member: Member, source: str, actor: str = "") -> None:
    """Delete a member; receivers first record its leaves and fix the group counts."""
    member_deleting.send(sender=Member, member=member, source=source, actor=actor)
    member.delete()


@transaction.atomic
def bulk_create_members(
    *, club: Club, members: Sequence[Member], source: str, actor: str = ""
) -> list[int]:
    """Insert already-normalised members in one statement and join them to their groups."""
    now = timezone.now()
    for member in members:
        member.club = club
        member.created_at = member.updated_at = now
    created = Member.objects.bulk_create(members)
    ids = [m.pk for m in created]
    members_created.send(sender=Member, club=club, member_ids=ids, source=source, actor=actor)
    return ids
