"""Member payloads and representations; email and msisdn are normalised by the services."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from members.models import ChannelStatus, Member


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


class MemberPayloadSerializer(serializers.Serializer[Any]):
    """Create and update: only these fields; ``id``, ``club``, timestamps and the rest are ignored.

    Absent fields keep their value on update; null or "" clears email or msisdn (one of the
    two must remain).
    """

    email = serializers.CharField(
        max_length=254, allow_null=True, allow_blank=True, required=False, trim_whitespace=False
    )
    msisdn = serializers.CharField(
        max_length=32, allow_null=True, allow_blank=True, required=False, trim_whitespace=False
    )
    properties = serializers.DictField(required=False)
    consents = serializers.DictField(required=False)
    sms_status = serializers.ChoiceField(choices=ChannelStatus.choices, required=False)
    email_status = serializers.ChoiceField(choices=ChannelStatus.choices, required=False)
    push_status = serializers.ChoiceField(choices=ChannelStatus.choices, required=False)
    subunit_ids = serializers.ListField(child=serializers.IntegerField(), required=False)
    favorite_stores = serializers.ListField(child=serializers.IntegerField(), required=False)
