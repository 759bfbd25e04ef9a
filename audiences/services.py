"""State changes of audiences."""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.db.models import Q

from audiences.conditions import ConditionError, Node, parse_conditions
from audiences.models import Audience
from audiences.signals import audience_conditions_changed
from loyalty.errors import InvalidParameters, NotAllowed
from loyalty.models import Club


class AudienceInUse(NotAllowed):
    message = "The audience is used by a members group and cannot be destroyed."


class AudienceOwnedByGroup(NotAllowed):
    message = "The audience is the rule of a manual or system group and cannot be changed."


def parse_or_refuse(conditions: Any, field: str = "conditions") -> Node:
    """Parse ``conditions`` with the engine, or refuse with 422 details under ``field``."""
    try:
        return parse_conditions(conditions)
    except ConditionError as exc:
        raise InvalidParameters(details={field: exc.details}) from exc


def validate_conditions(conditions: Any, field: str = "conditions") -> list[Any]:
    """Return ``conditions`` if the engine's grammar accepts them, else raise 422 on ``field``."""
    parse_or_refuse(conditions, field)
    return list(conditions)


@transaction.atomic
def create_audience(*, club: Club, name: str = "", conditions: Any = None) -> Audience:
    conditions = validate_conditions([] if conditions is None else conditions)
    return Audience.objects.create(club=club, name=name, conditions=conditions)


@transaction.atomic
def update_audience(*, audience: Audience, **fields: Any) -> Audience:
    """Rename an audience or change its rule; groups that follow it are re-computed."""
    audience = Audience.objects.select_for_update().get(pk=audience.pk, club_id=audience.club_id)
    changed = "conditions" in fields and fields["conditions"] != audience.conditions
    if changed:
        if audience.groups.filter(Q(automatic=False) | Q(system=True)).exists():
            raise AudienceOwnedByGroup()
        audience.conditions = validate_conditions(fields["conditions"])
    if "name" in fields:
        audience.name = fields["name"]
    audience.save()
    if changed:
        audience_conditions_changed.send(sender=Audience, audience=audience)
    return audience


@transaction.atomic
def delete_audience(*, audience: Audience) -> None:
    if audience.groups.exists():
        raise AudienceInUse()
    audience.delete()
