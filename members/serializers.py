"""Member payloads and representations; email and msisdn are normalised by the services."""

from __future__ import annotations

from typing import Any

from django.utils import timezone
from rest_framework import serializers

from loyalty.api.fields import (
    StrictCharField,
    StrictIntegerField,
    reject_unstorable,
)
from loyalty.api.pagination import MAX_ID
from members.models import ChannelStatus, Member
from members.normalize import stored_consents


class MemberSerializer(serializers.ModelSerializer[Member]):
    properties = serializers.DictField(read_only=True)
    consents = serializers.DictField(read_only=True)
    subunit_ids = serializers.ListField(child=serializers.IntegerField(), read_only=True)
    favorite_stores = serializers.ListField(child=serializers.IntegerField(), read_only=True)

    class Meta:
        model = Member
        fields = [
            "id",
            "email",
            "msisdn",
            "properties",
            "consents",
            "sms_status",
            "email_status",
            "push_status",
            "subunit_ids",
            "favorite_stores",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields

    def to_representation(self, instance: Member) -> dict[str, Any]:
        # Written out rather than walked field by field: a page of 100 members is the hot
        # read path, and DRF's generic walk took most of its time. Same output as the
        # declared fields (DRF's ISO 8601 datetimes with "Z" for UTC).
        return {
            "id": instance.pk,
            "email": instance.email,
            "msisdn": instance.msisdn,
            "properties": instance.properties,
            "consents": instance.consents,
            "sms_status": instance.sms_status,
            "email_status": instance.email_status,
            "push_status": instance.push_status,
            "subunit_ids": instance.subunit_ids,
            "favorite_stores": instance.favorite_stores,
            "created_at": DATETIME.to_representation(instance.created_at),
            "updated_at": DATETIME.to_representation(instance.updated_at),
        }


DATETIME = serializers.DateTimeField()


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
