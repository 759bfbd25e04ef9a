"""Member payloads and representations; email and msisdn are normalised by the services."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from typing import Any

from django.utils import timezone
from drf_spectacular.utils import OpenApiExample, extend_schema_serializer
from rest_framework import serializers

from loyalty.api.fields import (
    StrictCharField,
    StrictIntegerField,
    reject_unstorable,
)
from loyalty.api.pagination import MAX_ID, datetime_text
from members.models import ChannelStatus, Member
from members.normalize import stored_consents
from members.selectors import MEMBER_COLUMNS

MEMBER_EXAMPLE = {
    "id": 1234567,
    "email": "ola.nordmann@example.com",
    "msisdn": "4740769126",
    "properties": {"first_name": "Ola", "interests": ["skiing"]},
    "consents": {"newsletter": {"status": True, "updated_at": "2025-03-01T09:30:00Z"}},
    "sms_status": "enabled",
    "email_status": "enabled",
    "push_status": "disabled",
    "subunit_ids": [12],
    "favorite_stores": [3],
    "created_at": "2025-03-01T09:30:00Z",
    "updated_at": "2025-03-01T09:30:00Z",
}


@extend_schema_serializer(
    examples=[OpenApiExample("A member", value=MEMBER_EXAMPLE, response_only=True)]
)
class MemberSerializer(serializers.ModelSerializer[Member]):
    properties = serializers.DictField(read_only=True)
    consents = serializers.DictField(read_only=True)
    subunit_ids = serializers.ListField(child=serializers.IntegerField(), read_only=True)
    favorite_stores = serializers.ListField(child=serializers.IntegerField(), read_only=True)

    class Meta:
        model = Member
        fields = list(MEMBER_COLUMNS)
        read_only_fields = fields

    def to_representation(self, instance: Member) -> dict[str, Any]:
        row = {column: getattr(instance, column) for column in MEMBER_COLUMNS}
        return member_json(row, datetime_text())


def member_json(
    row: Mapping[str, Any], text: Callable[[datetime | None], str | None]
) -> dict[str, Any]:
    """A member as ``MemberSerializer`` declares it, from a row of ``MEMBER_COLUMNS`` and the
    response's datetime writer.

    Written out rather than walked field by field: a page of 100 members is the hot read
    path, and DRF's generic walk (and a model instance per row) took most of its time.
    """
    return {
        "id": row["id"],
        "email": row["email"],
        "msisdn": row["msisdn"],
        "properties": row["properties"],
        "consents": row["consents"],
        "sms_status": row["sms_status"],
        "email_status": row["email_status"],
        "push_status": row["push_status"],
        "subunit_ids": row["subunit_ids"],
        "favorite_stores": row["favorite_stores"],
        "created_at": text(row["created_at"]),
        "updated_at": text(row["updated_at"]),
    }


def members_json(rows: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    text = datetime_text()
    return [member_json(row, text) for row in rows]


@extend_schema_serializer(
    examples=[
        OpenApiExample(
            "A member (email and msisdn are normalised)",
            value={
                "email": "Ola.Nordmann@Example.com",
                "msisdn": "+47 407 69 126",
                "properties": {"first_name": "Ola", "interests": ["skiing"]},
                "consents": {"newsletter": True},
            },
            request_only=True,
        )
    ]
)
class MemberPayloadSerializer(serializers.Serializer[Any]):
    """Create and update: only these fields; ``id``, ``club``, timestamps and the rest are ignored.

    Null or "" clears email or msisdn (one of the two must remain). Partial (PATCH), a null
    consent is kept, so that merging it removes the stored one.
    """

    email = StrictCharField(
        max_length=254, allow_null=True, allow_blank=True, required=False, trim_whitespace=False
    )
    msisdn = StrictCharField(
        max_length=32, allow_null=True, allow_blank=True, required=False, trim_whitespace=False
    )
    properties = serializers.DictField(required=False, validators=[reject_unstorable])
    consents = serializers.DictField(required=False, validators=[reject_unstorable])
    sms_status = serializers.ChoiceField(choices=ChannelStatus.choices, required=False)
    email_status = serializers.ChoiceField(choices=ChannelStatus.choices, required=False)
    push_status = serializers.ChoiceField(choices=ChannelStatus.choices, required=False)
    # Positive 64-bit ids, as an import takes them.
    subunit_ids = serializers.ListField(
        child=StrictIntegerField(min_value=1, max_value=MAX_ID), required=False
    )
    favorite_stores = serializers.ListField(
        child=StrictIntegerField(min_value=1, max_value=MAX_ID), required=False
    )

    def validate_consents(self, value: dict[str, Any]) -> dict[str, Any]:
        """Each consent by the import's rule, stored as ``{"status", "updated_at"}``: a missing
        time is the request's, and a null consent is left out (as an import removes it).

        A serializer method rather than the field's own check: the member imports API takes
        its rows' field types from this serializer, and rejects a row with a bad consent
        instead of the whole request.
        """
        consents, refused = stored_consents(value, timezone.now().isoformat())
        errors: dict[str, Any] = {}
        for name, exc in refused.items():
            error = [serializers.ErrorDetail(str(exc), code="invalid")]
            errors[name] = {exc.part: error} if exc.part else error
        if errors:
            raise serializers.ValidationError(errors)
        if self.partial:
            removed = {name: None for name, given in value.items() if given is None}
            return {**consents, **removed}
        return consents
