"""Audience payloads and representations; the conditions themselves are checked by the services."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from audiences.conditions import as_condition_list
from audiences.models import Audience
from loyalty.api.fields import StrictCharField, StrictIntegerField, reject_unstorable_at
from loyalty.api.pagination import MAX_ID

CONDITIONS_SCHEMA = {
    "type": "array",
    "items": {"type": "object", "additionalProperties": True},
    "description": "Audience conditions (SPEC section 4), all of which must hold, e.g. "
    '[{"condition_group": "member_properties", "type": "array", '
    '"field": "members_group_ids", "operator": "any", "value": [6813]}].',
}


# Sent, the conditions may also be one condition object: it counts as a one-element array.
CONDITIONS_PAYLOAD_SCHEMA = {
    "oneOf": [
        {key: value for key, value in CONDITIONS_SCHEMA.items() if key != "description"},
        {"type": "object", "additionalProperties": True},
    ],
    "description": f"{CONDITIONS_SCHEMA['description']} A single condition object counts "
    "as a one-element array.",
}


@extend_schema_field(CONDITIONS_SCHEMA)
class ConditionsField(serializers.JSONField):
    """The conditions as stored: always an array."""


@extend_schema_field(CONDITIONS_PAYLOAD_SCHEMA)
class ConditionsPayloadField(ConditionsField):
    """Any JSON here: the condition grammar belongs to the audience services, not the API.

    A single condition object where an array is expected is a one-element array, and is
    stored as one.
    """

    def to_internal_value(self, data: Any) -> Any:
        # Before JSONField's own check, which refuses an infinite number without saying where.
        reject_unstorable_at(data)
        return super().to_internal_value(as_condition_list(data))


class AudienceSerializer(serializers.ModelSerializer[Audience]):
    conditions = ConditionsField(read_only=True)

    class Meta:
        model = Audience
        fields = ["id", "name", "conditions", "created_at", "updated_at"]
        read_only_fields = fields


class AudiencePayloadSerializer(serializers.Serializer[Any]):
    """Create and update: ``id``, timestamps and anything unknown are ignored."""

    name = StrictCharField(max_length=200, allow_blank=True, required=False)
    conditions = ConditionsPayloadField(required=False)


class PreviewPayloadSerializer(serializers.Serializer[Any]):
    conditions = ConditionsPayloadField()
    members_group_id = StrictIntegerField(
        required=False,
        allow_null=True,
        min_value=1,
        max_value=MAX_ID,
        help_text="A group of the club: also report the impact of making these conditions "
        "its rule.",
    )


class ImpactSerializer(serializers.Serializer[Any]):
    members_group_id = serializers.IntegerField()
    joining = serializers.IntegerField(help_text="Members who would join the group.")
    leaving = serializers.IntegerField(help_text="Members who would leave the group.")
    joining_sample = serializers.ListField(
        child=serializers.IntegerField(), help_text="The first (at most 100) joining ids."
    )
    leaving_sample = serializers.ListField(
        child=serializers.IntegerField(), help_text="The first (at most 100) leaving ids."
    )


class PreviewSerializer(serializers.Serializer[Any]):
    count = serializers.IntegerField(help_text="How many of the club's members match.")
    member_ids = serializers.ListField(
        child=serializers.IntegerField(),
        help_text="The ids of the first matching members (at most 100), ascending.",
    )
    impact = ImpactSerializer(
        allow_null=True, help_text="Only when members_group_id was sent; else null."
    )
