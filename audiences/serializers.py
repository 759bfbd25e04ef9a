"""Audience payloads and representations; the conditions themselves are checked by the services."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import OpenApiExample, extend_schema_field, extend_schema_serializer
from rest_framework import serializers

from audiences.conditions import as_condition_list, grammar
from audiences.models import Audience
from loyalty.api.components import SCHEMAS, component, enum
from loyalty.api.fields import StrictCharField, StrictIntegerField, reject_unstorable_at
from loyalty.api.pagination import MAX_ID

LEAF_OPERATORS = tuple(dict.fromkeys(op for ops in grammar.OPERATORS.values() for op in ops))
LEAF = {
    "type": "object",
    "description": "One test of a member's field. The operators each type takes: "
    + "; ".join(f"{t}: {', '.join(ops)}" for t, ops in grammar.OPERATORS.items())
    + ". condition_group consents tests consents.<name> (type boolean); absent, it is "
    "member_properties.",
    "required": ["type", "field", "operator"],
    "properties": {
        "condition_group": enum("ConditionGroupEnum", grammar.CONDITION_GROUPS),
        "type": enum("ConditionTypeEnum", grammar.TYPES),
        "field": {
            "type": "string",
            "description": "A member field (email, msisdn, created_at, members_group_ids, "
            "...), a property key, or consents.<name>.",
        },
        "operator": enum("ConditionOperatorEnum", LEAF_OPERATORS),
        "value": {
            "nullable": True,
            "description": "What the operator compares with: a string, number, boolean or "
            "date (YYYY-MM-DD), an array of them (in, not_in, any, all, none), two for "
            "between, a number of days; absent for empty, not_empty, present and blank.",
        },
    },
}


def _node(children: str) -> dict[str, Any]:
    """A node whose conditions are the component ``children``."""
    return {
        "type": "object",
        "description": "and: all of its conditions hold; or: any of them; not: they do not "
        "all hold.",
        "required": ["operator", "conditions"],
        "properties": {
            "operator": enum("ConditionNodeOperatorEnum", grammar.BRANCH_OPERATORS),
            "conditions": {"type": "array", "minItems": 1, "items": {"$ref": SCHEMAS + children}},
        },
    }


def _explained(schema: dict[str, Any]) -> dict[str, Any]:
    """``schema`` with a required ``matches``, as the explanation of a membership marks it."""
    matches = {"type": "boolean", "description": "Whether the member satisfies this condition."}
    return {
        **schema,
        "required": [*schema["required"], "matches"],
        "properties": {**schema["properties"], "matches": matches},
    }


# SPEC section 4 as schema components: the platform's condition (a leaf), and the node that
# nests conditions, referring back to the union of both.
CONDITION = component(
    "Condition",
    {
        "oneOf": [component("ConditionLeaf", LEAF), component("ConditionNode", _node("Condition"))],
        "description": "A condition (a leaf) or a node of conditions (and, or, not).",
    },
)
# The same tree as a membership's explanation sends it: every leaf and node with matches.
EXPLAINED_CONDITION = component(
    "ExplainedCondition",
    {
        "oneOf": [
            component("ExplainedConditionLeaf", _explained(LEAF)),
            component("ExplainedConditionNode", _explained(_node("ExplainedCondition"))),
        ],
        "description": "A condition or a node of conditions, with whether the member satisfies it.",
    },
)
CONDITION_EXAMPLE = {
    "condition_group": "member_properties",
    "type": "string",
    "field": "email",
    "operator": "match",
    "value": "@gmail.",
}
CONDITIONS_SCHEMA = {
    "type": "array",
    "items": CONDITION,
    "description": "Audience conditions (SPEC section 4), all of which must hold, e.g. "
    '[{"condition_group": "member_properties", "type": "array", '
    '"field": "members_group_ids", "operator": "any", "value": [6813]}].',
}
# Sent, the conditions may also be one condition object: it counts as a one-element array.
CONDITIONS_PAYLOAD_SCHEMA = {
    "oneOf": [
        {key: value for key, value in CONDITIONS_SCHEMA.items() if key != "description"},
        CONDITION,
    ],
    "description": f"{CONDITIONS_SCHEMA['description']} A single condition object counts "
    "as a one-element array.",
}


@extend_schema_field(CONDITIONS_SCHEMA)
class ConditionsField(serializers.JSONField):
    """The conditions as stored: always an array."""


@extend_schema_field({"type": "array", "items": EXPLAINED_CONDITION})
class ExplainedConditionsField(serializers.JSONField):
    """A rule's conditions as a membership's explanation sends them."""


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


@extend_schema_serializer(
    examples=[
        OpenApiExample(
            "An audience",
            value={
                "id": 4021,
                "name": "Gmail users",
                "conditions": [CONDITION_EXAMPLE],
                "created_at": "2025-03-01T09:30:00Z",
                "updated_at": "2025-03-01T09:30:00Z",
            },
            response_only=True,
        )
    ]
)
class AudienceSerializer(serializers.ModelSerializer[Audience]):
    conditions = ConditionsField(read_only=True)

    class Meta:
        model = Audience
        fields = ["id", "name", "conditions", "created_at", "updated_at"]
        read_only_fields = fields


@extend_schema_serializer(
    examples=[
        OpenApiExample(
            "Members with a Gmail address",
            value={"name": "Gmail users", "conditions": [CONDITION_EXAMPLE]},
            request_only=True,
        )
    ]
)
class AudiencePayloadSerializer(serializers.Serializer[Any]):
    """Create and update: ``id``, timestamps and anything unknown are ignored."""

    name = StrictCharField(max_length=200, allow_blank=True, required=False)
    conditions = ConditionsPayloadField(required=False)


@extend_schema_serializer(
    examples=[
        OpenApiExample(
            "Gmail or Hotmail users, as the rule of group 6813",
            value={
                "conditions": [
                    {
                        "operator": "or",
                        "conditions": [
                            CONDITION_EXAMPLE,
                            {**CONDITION_EXAMPLE, "value": "@hotmail."},
                        ],
                    }
                ],
                "members_group_id": 6813,
            },
            request_only=True,
        )
    ]
)
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


@extend_schema_serializer(
    examples=[
        OpenApiExample(
            "Two members match; one would join the group",
            value={
                "count": 2,
                "member_ids": [1234567, 1234568],
                "impact": {
                    "members_group_id": 6813,
                    "joining": 1,
                    "leaving": 0,
                    "joining_sample": [1234568],
                    "leaving_sample": [],
                },
            },
            response_only=True,
        )
    ]
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
