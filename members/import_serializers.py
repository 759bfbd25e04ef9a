"""The import payload and the import report; each member row is checked by the import engine."""

from __future__ import annotations

import re
from typing import Any

from django.conf import settings
from django.core.validators import RegexValidator
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from loyalty.api.fields import (
    UNSTORABLE,
    StrictCharField,
    StrictIntegerField,
    scalars,
    unstorable,
)
from loyalty.api.pagination import MAX_ID
from members.models import (
    ImportOperation,
    MemberIdentifierType,
    MemberImport,
    MultiValuesUpdateMode,
)
from members.serializers import MemberPayloadSerializer

# What an import_id may be: it is a path segment of GET members/imports/{import_id}.
IMPORT_ID_PATTERN = r"[A-Za-z0-9_.:-]{1,100}"
_NUL = "null_characters_not_allowed"


def _reject_dot_segments(value: str) -> None:
    """Refuse "." and "..": HTTP clients resolve them away in a path, so GET
    members/imports/{import_id} could never reach the import."""
    if value in (".", ".."):
        raise serializers.ValidationError(
            'An import id cannot be "." or "..", which are not kept in a path.', code="invalid"
        )


class ImportedMemberSerializer(MemberPayloadSerializer):
    """A member as in POST members, with ``id`` to find it by id: the JSON type of each field."""

    id = StrictIntegerField(
        required=False,
        min_value=1,
        max_value=MAX_ID,
        help_text="The member's id, when member_identifier_type is id.",
    )


@extend_schema_field(ImportedMemberSerializer(many=True))
class MemberRowsField(serializers.Field[list[Any], list[Any], list[Any], Any]):
    """A non-empty JSON array of member objects, at most MEMBER_IMPORT_MAX_MEMBERS of them.

    Only the JSON types the schema gives each field are checked here (a number for an email
    refuses the request, as in POST members): the engine validates the values of each member
    and reports the rows it refuses in the import's ``rejected_rows``, so one row with an
    invalid email or an unknown key never refuses the request.
    """

    # The fields of a row; also lets the 422's details give each field's limits.
    child = ImportedMemberSerializer()

    default_error_messages = {
        "not_a_list": 'Expected a list of items but got type "{input_type}".',
        "empty": "This list may not be empty.",
        "max_length": "Ensure this field has no more than {max_length} elements.",
        "not_a_dict": "Expected a member object.",
    }

    @property
    def max_length(self) -> int:
        return int(settings.MEMBER_IMPORT_MAX_MEMBERS)

    def to_internal_value(self, data: Any) -> list[Any]:
        if not isinstance(data, list):
            self.fail("not_a_list", input_type=type(data).__name__)
        if not data:
            self.fail("empty")
        if len(data) > self.max_length:
            self.fail("max_length", max_length=self.max_length)
        errors: dict[int, Any] = {}
        for index, item in enumerate(data):
            if not isinstance(item, dict):
                message = str(self.error_messages["not_a_dict"])
                errors[index] = [serializers.ErrorDetail(message, code="not_a_dict")]
            elif row_errors := self._row_errors(item):
                errors[index] = row_errors
        if errors:
            # Keyed by row index, which DRF keeps; the stubs admit only str keys.
            raise serializers.ValidationError(errors)  # type: ignore[arg-type]
        return data

    def _row_errors(self, row: dict[str, Any]) -> Any:
        # The row is kept as sent until it has run, unknown keys too: as JSON text when jsonb
        # cannot hold it (see import_services), but no text in PostgreSQL holds a NUL.
        if any(isinstance(item, str) and "\x00" in item for item in scalars(row)):
            return [serializers.ErrorDetail(UNSTORABLE[_NUL], code=_NUL)]
        errors = {}
        for key, value in row.items():
            field = self.child.fields.get(key)
            # An unknown key, or a value PostgreSQL cannot store (a lone surrogate, a number
            # too large for a float): the engine rejects the row on its own.
            if field is None or unstorable(value):
                continue
            try:
                field.run_validation(value)
            except serializers.ValidationError as exc:
                errors[key] = exc.detail
        return errors

    def to_representation(self, value: list[Any]) -> list[Any]:
        return value


class MemberImportPayloadSerializer(serializers.Serializer[Any]):
    """POST members/imports. Unknown keys are ignored."""

    import_id = StrictCharField(
        required=False,
        allow_null=True,
        validators=[
            RegexValidator(re.compile(rf"\A{IMPORT_ID_PATTERN}\Z")),
            _reject_dot_segments,
        ],
        help_text="The client's id of the import, unique in the club: letters, digits and "
        '_ . : - (at most 100), but not "." or "..". Made up when absent or null.',
    )
    request_number = StrictIntegerField(
        required=False,
        allow_null=True,
        min_value=0,
        max_value=2**31 - 1,
        help_text="The client's number of this request, returned as sent.",
    )
    operation = serializers.ChoiceField(
        choices=ImportOperation.choices,
        help_text="create: new members only (a row of an existing member is rejected); "
        "update: existing members only, found by member_identifier_type (a row matching "
        "nobody is rejected). Properties and consents are merged key by key (null removes "
        "a key); a row that changes nothing counts as unchanged.",
    )
    member_identifier_type = serializers.ChoiceField(
        choices=MemberIdentifierType.choices,
        default=MemberIdentifierType.EMAIL,
        help_text="How a row is matched to an existing member (default email). The rows "
        "must carry it; create cannot use id, since the service gives new members their ids.",
    )
    multi_values_update_mode = serializers.ChoiceField(
        choices=MultiValuesUpdateMode.choices,
        default=MultiValuesUpdateMode.REPLACE,
        help_text="Array values (subunit_ids, favorite_stores, array properties) of an "
        "updated member: replace them, or append the new values (default replace).",
    )
    members = MemberRowsField(
        help_text="The members, at most MEMBER_IMPORT_MAX_MEMBERS (10,000 by default)."
    )

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if (
            attrs["operation"] == ImportOperation.CREATE
            and attrs["member_identifier_type"] == MemberIdentifierType.ID
        ):
            raise serializers.ValidationError(
                {
                    "member_identifier_type": [
                        serializers.ErrorDetail(
                            "New members get their ids from the service: create them by "
                            "email or msisdn.",
                            code="not_allowed_with_create",
                        )
                    ]
                }
            )
        return attrs


class RejectedRowSerializer(serializers.Serializer[Any]):
    index = serializers.IntegerField(help_text="The row's position in members, from 0.")
    member = serializers.JSONField(help_text="The row as sent.")
    reason = serializers.CharField(help_text="Why the row was not imported.")


class MemberImportSerializer(serializers.ModelSerializer[MemberImport]):
    rejected_rows = RejectedRowSerializer(
        many=True, read_only=True, help_text="The rows not imported, in order."
    )
    error = serializers.SerializerMethodField(help_text="Why a failed import stopped.")

    class Meta:
        model = MemberImport
        fields = [
            "import_id",
            "request_number",
            "status",
            "operation",
            "member_identifier_type",
            "multi_values_update_mode",
            "created",
            "updated",
            "unchanged",
            "rejected",
            "rejected_rows",
            "created_at",
            "started_at",
            "finished_at",
            "error",
        ]
        read_only_fields = fields

    @extend_schema_field({"type": "string", "nullable": True})
    def get_error(self, member_import: MemberImport) -> str | None:
        return member_import.error or None
