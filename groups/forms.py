"""Admin forms of members groups: the group itself, and bulk membership changes."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from itertools import chain
from typing import Any

from django import forms
from django.conf import settings
from django.core.files.uploadedfile import UploadedFile
from django.db.models import QuerySet

from audiences.forms import ConditionsFormField
from audiences.models import Audience
from groups.models import MembersGroup
from loyalty.admin import ServiceModelForm
from loyalty.models import Club

# The first value of a header row, compared case-insensitively. Only these mark a header,
# so a header-less file's first line is read as an identifier (and reported if invalid).
HEADER_NAMES = frozenset(
    {
        "id",
        "member id",
        "member_id",
        "email",
        "e-mail",
        "email address",
        "msisdn",
        "phone",
        "phone number",
        "mobile",
        "identifier",
    }
)
# The delimiter is guessed from this much of the first line: csv.Sniffer's quote search
# takes time quadratic in its input, and a header tells its delimiter early.
SNIFF_CHARS = 2048


def rule_is_editable(group: MembersGroup | None) -> bool:
    """A new group may get conditions (making it automatic); of the rest, only automatic ones."""
    return group is None or (group.automatic and not group.system)


class AudienceChoiceField(forms.ModelChoiceField[Audience]):
    def label_from_instance(self, obj: Audience) -> str:
        return f"{obj} ({obj.club}, id {obj.pk})"


class GroupForm(ServiceModelForm):
    """A group's labels and, for a new or automatic group, the conditions its members follow."""

    audience_conditions = ConditionsFormField(
        label="Audience conditions",
        required=False,
        help_text=(
            "Who the group's members are: add conditions and groups of them, or edit the "
            "rule as JSON (see the API documentation). A group created with conditions is "
            "automatic: its members are exactly the members who match them. Leave empty "
            "for a manual group."
        ),
    )

    # A new group may follow an audience of its club instead (named as the API names it,
    # so that the service's refusals land on it).
    audience_id = AudienceChoiceField(
        queryset=Audience.objects.none(),
        required=False,
        label="Follow audience",
        help_text=(
            "An audience of the club: the group is automatic and its members are the "
            "audience's. Leave empty to give conditions, or for a manual group."
        ),
    )
    # Set by the admin to the clubs the user manages: whose audiences may be offered.
    clubs: QuerySet[Club] = Club.objects.none()

    class Meta:
        model = MembersGroup
        fields = ["club", "name", "type", "description"]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        group = self.instance if self.instance.pk is not None else None
        if group is None:
            audiences = self.fields["audience_id"]
            assert isinstance(audiences, forms.ModelChoiceField)
            # The audiences made as such, not each group's own (its conditions say the same).
            audiences.queryset = (
                Audience.objects.filter(club__in=self.clubs, made_for_group=False)
                .select_related("club")
                .order_by("club__name", "name", "pk")
            )
        else:
            del self.fields["audience_id"]
        if not rule_is_editable(group):
            del self.fields["audience_conditions"]
        elif group is not None:
            self.fields[
                "audience_conditions"
            ].help_text = "Changing them re-computes the group's members."
            self.initial.setdefault("audience_conditions", group.audience.conditions)

    def clean_audience_id(self) -> int | None:
        audience = self.cleaned_data["audience_id"]
        return None if audience is None else int(audience.pk)

    def clean_audience_conditions(self) -> Any:
        conditions = self.cleaned_data["audience_conditions"]
        if conditions is None and self.instance.pk is not None:
            raise forms.ValidationError("An automatic group needs its conditions.")
        return conditions


def _lines(upload: UploadedFile[bytes]) -> Iterator[str]:
    # Django splits the upload on \r, \n and \r\n only, which never occur inside a UTF-8
    # sequence, so each line decodes on its own and the file is never read whole.
    for number, line in enumerate(upload):
        text = line.decode("utf-8")
        yield text.removeprefix("\ufeff") if number == 0 else text


def first_column(upload: UploadedFile[bytes], limit: int) -> list[str]:
    """Read the first column of a CSV upload, at most ``limit + 1`` values.

    The delimiter (comma, semicolon or tab) is guessed from the start of the first line, as
    spreadsheet exports differ by locale. The first row is a header, and skipped, when its
    value is one of ``HEADER_NAMES``. Raise ``UnicodeDecodeError`` for a file that is not
    UTF-8, and ``ValidationError`` for a record the CSV reader refuses (a field over
    ``csv.field_size_limit()``).
    """
    lines = _lines(upload)
    first = next(lines, "")
    try:
        dialect: type[csv.Dialect] | csv.Dialect = csv.Sniffer().sniff(
            first[:SNIFF_CHARS], delimiters=",;\t"
        )
    except csv.Error:
        dialect = csv.excel
    values: list[str] = []
    seen_first = False
    reader = csv.reader(chain([first], lines), dialect)
    while len(values) <= limit:
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            raise forms.ValidationError(
                f"Line {reader.line_num} is not valid CSV ({exc}); nothing was changed."
            ) from None
        value = row[0].strip() if row else ""
        if not value:
            continue
        if not seen_first:
            seen_first = True
            if value.casefold() in HEADER_NAMES:
                continue
        values.append(value)
    return values


class BulkMembersForm(forms.Form):
    """Identifiers pasted one per line and/or the first column of a CSV file."""

    action = forms.ChoiceField(
        choices=[("add", "Add them to the group"), ("remove", "Remove them from the group")],
        widget=forms.RadioSelect,
        initial="add",
    )
    identifier_type = forms.ChoiceField(
        label="Identifiers are",
        choices=[("email", "Emails"), ("msisdn", "Phone numbers (MSISDN)"), ("id", "Member ids")],
        initial="email",
    )
    identifiers = forms.CharField(
        label="Paste identifiers",
        required=False,
        widget=forms.Textarea(attrs={"rows": 8, "cols": 50}),
        help_text="One per line.",
    )
    csv_file = forms.FileField(
        label="or upload a CSV file",
        required=False,
        help_text=(
            "UTF-8; the first column is read. A first row naming the column (email, "
            "e-mail, email address, msisdn, phone, phone number, mobile, id, member id, "
            "member_id or identifier, in any case) is a header and skipped; every other "
            "row is an identifier."
        ),
    )

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        assert cleaned is not None  # a Form's clean() returns its cleaned_data
        if cleaned.get("identifier_type") is None:
            # Nothing is changed without the type: its error is shown, the upload left unread.
            return cleaned
        limit: int = settings.BULK_IDENTIFIERS_MAX
        identifiers = [line.strip() for line in cleaned.get("identifiers", "").splitlines()]
        identifiers = [identifier for identifier in identifiers if identifier]
        upload = cleaned.get("csv_file")
        if upload is not None:
            try:
                identifiers += first_column(upload, limit)
            except UnicodeDecodeError:
                self.add_error("csv_file", "The file is not UTF-8 text; save it as “CSV UTF-8”.")
                return cleaned
            except forms.ValidationError as error:
                self.add_error("csv_file", error)
                return cleaned
        if not identifiers:
            raise forms.ValidationError("Paste identifiers or upload a CSV file of them.")
        if len(identifiers) > limit:
            raise forms.ValidationError(
                f"At most {limit:,} identifiers per change; "
                "the import_group_members command takes files of any size."
            )
        cleaned["identifier_list"] = identifiers
        return cleaned
