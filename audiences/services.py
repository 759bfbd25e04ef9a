"""State changes of audiences."""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.db.models import Q

from audiences.models import Audience
from loyalty.errors import InvalidParameters, NotAllowed
from loyalty.models import Club


class AudienceInUse(NotAllowed):
    message = "The audience is used by a members group and cannot be destroyed."


class AudienceOwnedByGroup(NotAllowed):
    message = "The audience is the rule of a manual or system group and cannot be changed."


def validate_conditions(conditions: Any) -> list[Any]:
    """Check the outer shape of ``conditions``: a JSON array of condition objects."""
    if not isinstance(conditions, list):
        raise InvalidParameters.field("conditions", "not_an_array")
    details = {
        str(index): [{"error": "not_an_object", "options": {}}]
        for index, condition in enumerate(conditions)
        if not isinstance(condition, dict)
    }
    if details:
        raise InvalidParameters(details={"conditions": details})
    return conditions


@transaction.atomic
def create_audience(*, club: Club, name: str = "", conditions: Any = None) -> Audience:
    conditions = validate_conditions([] if conditions is None else conditions)
    return Audience.objects.create(club=club, name=name, conditions=conditions)


@transaction.atomic
def update_audience(*, audience: Audience, **fields: Any) -> Audience:
    audience = Audience.objects.select_for_update().get(pk=audience.pk, club_id=audience.club_id)
    if "conditions" in fields:
        if audience.groups.filter(Q(automatic=False) | Q(system=True)).exists():
            raise AudienceOwnedByGroup()
        audience.conditions = validate_conditions(fields["conditions"])
    if "name" in fields:
        audience.name = fields["name"]
    audience.save()
    return audience


@transaction.atomic
def delete_audience(*, audience: Audience) -> None:
    if audience.groups.exists():
        raise AudienceInUse()
    audience.delete()
