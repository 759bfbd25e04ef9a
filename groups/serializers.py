"""Members group payloads, representations and the bulk membership payload and reports."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from typing import Any

from django.conf import settings
from drf_spectacular.utils import OpenApiExample, extend_schema_field, extend_schema_serializer
from rest_framework import serializers

from audiences.serializers import (
    CONDITION_EXAMPLE,
    ConditionsField,
    ConditionsPayloadField,
    ExplainedConditionsField,
)
from groups.models import MembersGroup, MembershipEvent
from loyalty.api.fields import (
    UNSTORABLE,
    StrictBooleanField,
    StrictCharField,
    StrictIntegerField,
    unstorable,
)
from loyalty.api.pagination import MAX_ID, datetime_text
from members.models import MemberIdentifierType
from members.selectors import IDENTIFIER_TYPES

MEMBERS_GROUP_EXAMPLE = {
    "id": 6813,
    "name": "Red",
    "type": "Color",
    "description": "Lorem ipsum",
    "automatic": False,
    "system": False,
    "audience_id": 4021,
    "audience_conditions": [
        {
            "condition_group": "member_properties",
            "type": "array",
            "field": "members_group_ids",
            "operator": "any",
            "value": [6813],
        }
    ],
    "members_count": 2,
    "recomputing": False,
    "created_at": "2025-03-01T09:30:00Z",
    "updated_at": "2025-03-01T09:30:00Z",
}


@extend_schema_serializer(
    examples=[OpenApiExample("A manual group", value=MEMBERS_GROUP_EXAMPLE, response_only=True)]
)
class MembersGroupSerializer(serializers.ModelSerializer[MembersGroup]):
    audience_id = serializers.IntegerField(read_only=True, help_text="The related audience.")
    audience_conditions = ConditionsField(
        source="audience.conditions",
        read_only=True,
        help_text="The related audience's conditions; a manual group's is "
        "members_group_ids any [its own id].",
    )

    class Meta:
        model = MembersGroup
        fields = [
            "id",
            "name",
            "type",
            "description",
            "automatic",
            "system",
            "audience_id",
            "audience_conditions",
            "members_count",
            "recomputing",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields

    def to_representation(self, instance: MembersGroup) -> dict[str, Any]:
        return group_json(_group_row(instance), datetime_text())


# The columns a group's representation reads as a ``values()`` row: the serializer's
# fields, its audience's conditions read through the relation. The read paths build their
# JSON from rows, not model instances.
GROUP_COLUMNS = tuple(
    "audience__conditions" if name == "audience_conditions" else name
    for name in MembersGroupSerializer.Meta.fields
)
# A group of one member's (``GroupMembershipSerializer``) adds the member's join.
GROUP_MEMBERSHIP_COLUMNS = (*GROUP_COLUMNS, "joined_at", "joined_source")


def _group_row(instance: MembersGroup) -> dict[str, Any]:
    row = {column: getattr(instance, column) for column in GROUP_COLUMNS if "__" not in column}
    return {**row, "audience__conditions": instance.audience.conditions}


def group_json(
    row: Mapping[str, Any], text: Callable[[datetime | None], str | None]
) -> dict[str, Any]:
    """A group as ``MembersGroupSerializer`` declares it, from a row of ``GROUP_COLUMNS``
    and the response's datetime writer; written out, as DRF's field walk cost most of a
    list's time."""
    return {
        "id": row["id"],
        "name": row["name"],
        "type": row["type"],
        "description": row["description"],
        "automatic": row["automatic"],
        "system": row["system"],
        "audience_id": row["audience_id"],
        "audience_conditions": row["audience__conditions"],
        "members_count": row["members_count"],
        "recomputing": row["recomputing"],
        "created_at": text(row["created_at"]),
        "updated_at": text(row["updated_at"]),
    }


def groups_json(rows: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    text = datetime_text()
    return [group_json(row, text) for row in rows]


def group_membership_json(
    row: Mapping[str, Any], text: Callable[[datetime | None], str | None]
) -> dict[str, Any]:
    """A row of ``GROUP_MEMBERSHIP_COLUMNS`` as ``GroupMembershipSerializer`` declares it."""
    return {
        **group_json(row, text),
        "joined_at": text(row["joined_at"]),
        "joined_source": row["joined_source"],
    }


def group_memberships_json(rows: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    text = datetime_text()
    return [group_membership_json(row, text) for row in rows]


@extend_schema_serializer(
    examples=[
        OpenApiExample(
            "A manual group",
            value={"name": "Red", "type": "Color", "description": "Lorem ipsum"},
            request_only=True,
        ),
        OpenApiExample(
            "An automatic group",
            value={"name": "Gmail users", "audience_conditions": [CONDITION_EXAMPLE]},
            request_only=True,
        ),
    ]
)
class MembersGroupPayloadSerializer(serializers.Serializer[Any]):
    """Create and update. ``id``, ``automatic``, ``members_count`` and unknown keys are ignored.

    ``system`` may only be false (and is then ignored): system groups are the system's.
    A null ``audience_id``/``audience_conditions`` counts as absent; a null ``name``,
    ``type`` or ``description`` as "" (the platform's clients send null for "none").
    """

    name = StrictCharField(max_length=200, allow_blank=True, allow_null=True, required=False)
    type = StrictCharField(
        max_length=100,
        allow_blank=True,
        allow_null=True,
        required=False,
        help_text="A free label.",
    )
    description = StrictCharField(allow_blank=True, allow_null=True, required=False)
    system = StrictBooleanField(required=False, help_text="Only false is accepted.")
    audience_id = StrictIntegerField(
        min_value=1,
        max_value=MAX_ID,
        allow_null=True,
        required=False,
        help_text="Create an automatic group following this audience of the club.",
    )
    audience_conditions = ConditionsPayloadField(
        allow_null=True,
        required=False,
        help_text="Create an automatic group whose members match these conditions. Given "
        "with audience_id, they must be that audience's conditions (422 otherwise).",
    )

    def validate_system(self, value: bool) -> bool:
        if value:
            raise serializers.ValidationError(
                "System groups are created by the system only.", code="not_allowed"
            )
        return value

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        attrs.pop("system", None)
        for text in ("name", "type", "description"):
            if text in attrs and attrs[text] is None:
                attrs[text] = ""
        return {key: value for key, value in attrs.items() if value is not None}


@extend_schema_field(
    {
        "type": "array",
        # Any JSON value: one that is no identifier is reported, not refused (SPEC section
        # 2), so the schema must not promise a 4xx for it.
        "items": {},
        "description": "Emails, msisdns or member ids (one type per call; strings, or "
        "integers for ids and msisdns), normalised like the member fields; at most "
        "BULK_IDENTIFIERS_MAX (100,000 by default). One that cannot be normalised, or a "
        "value of another JSON type, is reported in invalid, not refused.",
    }
)
class IdentifierListField(serializers.Field[list[Any], list[Any], list[Any], Any]):
    """A JSON array of identifiers, checked in one pass (a call may carry 100,000).

    An element of any other JSON type (null, a boolean, a fraction, an object) is no
    identifier, but it does not fail the call: it is reported among the invalid ones, as
    an unknown one is. Only what could not be stored or sent back is refused.
    A field per element, as ``ListField(child=...)`` does, costs seconds at that size.
    """

    default_error_messages = {
        "not_a_list": 'Expected a list of items but got type "{input_type}".',
        "max_length": "Ensure this field has no more than {max_length} elements.",
    }

    @property
    def max_length(self) -> int:
        return int(settings.BULK_IDENTIFIERS_MAX)

    def to_internal_value(self, data: Any) -> list[Any]:
        if not isinstance(data, list):
            self.fail("not_a_list", input_type=type(data).__name__)
        if len(data) > self.max_length:
            self.fail("max_length", max_length=self.max_length)
        errors = {}
        for index, item in enumerate(data):
            # Refused as a string field refuses it: a lone surrogate reported back among the
            # invalid identifiers could not be rendered, once the change committed.
            if not isinstance(item, int) and (code := unstorable(item)):
                errors[index] = [serializers.ErrorDetail(UNSTORABLE[code], code=code)]
        if errors:
            # Keyed by item index, which DRF keeps; the stubs admit only str keys.
            raise serializers.ValidationError(errors)  # type: ignore[arg-type]
        return data

    def to_representation(self, value: list[Any]) -> list[Any]:
        return value


BULK_EXAMPLE = ["ola.nordmann@example.com", "Kari.Nordmann@example.com", "nobody@example.com", "x"]


@extend_schema_serializer(
    examples=[
        OpenApiExample(
            "Four emails",
            value={"identifier_type": "email", "identifiers": BULK_EXAMPLE},
            request_only=True,
        )
    ]
)
class BulkIdentifiersSerializer(serializers.Serializer[Any]):
    # The member import's identifier types (one enum in the schema), in the order the 422
    # lists them.
    identifier_type = serializers.ChoiceField(
        choices=[(value, MemberIdentifierType(value).label) for value in IDENTIFIER_TYPES]
    )
    identifiers = IdentifierListField()


def _identifiers(help_text: str) -> serializers.ListField:
    return serializers.ListField(child=serializers.JSONField(), help_text=help_text)


NOT_FOUND_HELP = "Identifiers of no member of the club, as sent (the first spelling of each)."
INVALID_HELP = "Identifiers that cannot be normalised, as sent."


@extend_schema_serializer(
    examples=[
        OpenApiExample(
            "Two added, one unknown, one malformed",
            value={
                "members_group": MEMBERS_GROUP_EXAMPLE,
                "added": 2,
                "already_members": 0,
                "not_found": ["nobody@example.com"],
                "invalid": ["x"],
            },
            response_only=True,
        )
    ]
)
class BulkAddReportSerializer(serializers.Serializer[Any]):
    members_group = MembersGroupSerializer(source="group")
    added = serializers.IntegerField(source="changed")
    already_members = serializers.IntegerField(source="unchanged")
    not_found = _identifiers(NOT_FOUND_HELP)
    invalid = _identifiers(INVALID_HELP)


@extend_schema_serializer(
    examples=[
        OpenApiExample(
            "Two removed, one unknown, one malformed",
            value={
                "members_group": {**MEMBERS_GROUP_EXAMPLE, "members_count": 0},
                "removed": 2,
                "not_members": 0,
                "not_found": ["nobody@example.com"],
                "invalid": ["x"],
            },
            response_only=True,
        )
    ]
)
class BulkRemoveReportSerializer(serializers.Serializer[Any]):
    members_group = MembersGroupSerializer(source="group")
    removed = serializers.IntegerField(source="changed")
    not_members = serializers.IntegerField(source="unchanged")
    not_found = _identifiers(NOT_FOUND_HELP)
    invalid = _identifiers(INVALID_HELP)


@extend_schema_serializer(
    examples=[
        OpenApiExample(
            "A member of an automatic group",
            value={
                "members_group_id": 6814,
                "member_id": 1234567,
                "is_member": True,
                "matches": True,
                "conditions": [
                    {
                        "operator": "or",
                        "conditions": [
                            {**CONDITION_EXAMPLE, "matches": True},
                            {**CONDITION_EXAMPLE, "value": "@hotmail.", "matches": False},
                        ],
                        "matches": True,
                    }
                ],
            },
            response_only=True,
        )
    ]
)
class ExplainSerializer(serializers.Serializer[Any]):
    members_group_id = serializers.IntegerField()
    member_id = serializers.IntegerField()
    is_member = serializers.BooleanField(help_text="Whether the member is in the group now.")
    matches = serializers.BooleanField(help_text="Whether the member satisfies the whole rule.")
    conditions = ExplainedConditionsField(
        help_text="The rule's conditions as stored, each node with a matches flag; nested "
        "and/or/not nodes carry their own conditions the same way.",
    )


@extend_schema_serializer(
    examples=[
        OpenApiExample(
            "A join through the API",
            value={
                "id": 99,
                "members_group_id": 6813,
                "member_id": 1234567,
                "kind": "joined",
                "source": "api",
                "actor": "token:crm",
                "created_at": "2025-03-01T09:30:00Z",
            },
            response_only=True,
        )
    ]
)
class MembershipEventSerializer(serializers.ModelSerializer[MembershipEvent]):
    """A join or a leave: when, which member, and through which door (source and actor)."""

    members_group_id = serializers.IntegerField(source="group_id", read_only=True)

    class Meta:
        model = MembershipEvent
        fields = ["id", "members_group_id", "member_id", "kind", "source", "actor", "created_at"]
        read_only_fields = fields


@extend_schema_serializer(
    examples=[
        OpenApiExample(
            "A group the member joined through the API",
            value={
                **MEMBERS_GROUP_EXAMPLE,
                "joined_at": "2025-03-01T09:30:00Z",
                "joined_source": "api",
            },
            response_only=True,
        )
    ]
)
class GroupMembershipSerializer(MembersGroupSerializer):
    """A group of one member's: the group, when the member joined it and through which door."""

    joined_at = serializers.DateTimeField(read_only=True)
    joined_source = serializers.CharField(
        read_only=True,
        allow_null=True,
        help_text="The source of the member's latest join (api, admin, import, rule, system); "
        "null if its event was pruned.",
    )

    class Meta(MembersGroupSerializer.Meta):
        fields = [*MembersGroupSerializer.Meta.fields, "joined_at", "joined_source"]

    def to_representation(self, instance: MembersGroup) -> dict[str, Any]:
        row = {
            **_group_row(instance),
            "joined_at": getattr(instance, "joined_at", None),
            "joined_source": getattr(instance, "joined_source", None),
        }
        return group_membership_json(row, datetime_text())


class IntervalStatsSerializer(serializers.Serializer[Any]):
    start = serializers.DateField(help_text="The interval's first day (the club's calendar).")
    end = serializers.DateField(help_text="The interval's last day.")
    size_at_start = serializers.IntegerField()
    joins = serializers.IntegerField()
    leaves = serializers.IntegerField()
    size_at_end = serializers.IntegerField(help_text="size_at_start + joins - leaves.")


@extend_schema_serializer(
    examples=[
        OpenApiExample(
            "Two days",
            value={
                "members_group_id": 6813,
                "interval": "day",
                "stats": [
                    {
                        "start": "2025-03-01",
                        "end": "2025-03-01",
                        "size_at_start": 0,
                        "joins": 2,
                        "leaves": 0,
                        "size_at_end": 2,
                    },
                    {
                        "start": "2025-03-02",
                        "end": "2025-03-02",
                        "size_at_start": 2,
                        "joins": 0,
                        "leaves": 1,
                        "size_at_end": 1,
                    },
                ],
            },
            response_only=True,
        )
    ]
)
class GroupStatsSerializer(serializers.Serializer[Any]):
    members_group_id = serializers.IntegerField()
    interval = serializers.ChoiceField(choices=["day", "week"])
    stats = IntervalStatsSerializer(many=True)
