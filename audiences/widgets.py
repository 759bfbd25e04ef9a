"""The admin's rule builder: the widget that edits audience conditions without JSON."""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from typing import Any, TypeVar

from django import forms

from audiences.catalogue import grammar

# A string: ModelForm takes type arguments in django-stubs only.
Form = TypeVar("Form", bound="forms.ModelForm[Any]")


@dataclass(frozen=True)
class RuleBuilderTarget:
    """What the builder's requests name besides the club: the group or audience edited.

    The catalogue leaves out the groups a rule of it could not name without a cycle, and a
    group's preview says who would join and leave it.
    """

    param: str
    id: int | None


@dataclass(frozen=True)
class RuleBuilderUrls:
    """Where the builder reads what a rule may name (``catalogue``, GET) and counts and
    checks the rule (``preview``, POST): endpoints its caller serves and passes in (the
    groups admin's: the group picker leaves out the groups that would make a cycle, which
    only that layer knows)."""

    catalogue: str
    preview: str


class RuleBuilderWidget(forms.Textarea):
    """Conditions built as rows and nested groups, read in words and counted as they change.

    The JSON textarea stays the field the form submits (and the "Edit as JSON" view): the
    builder's script writes every change into it, so the form, and the services behind it,
    take exactly what the API takes. Without the script the textarea is all there is.
    """

    template_name = "audiences/widgets/rule_builder.html"

    def __init__(
        self,
        *,
        club_id: int | None,
        target: RuleBuilderTarget,
        urls: RuleBuilderUrls,
        empty: str,
        attrs: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(attrs)
        self.config = {
            "catalogue": urls.catalogue,
            "preview": urls.preview,
            "club": club_id,
            "target": {"param": target.param, "id": target.id},
            # What an empty builder writes: "" leaves a new group manual, "[]" is a rule
            # that every member matches.
            "empty": empty,
            "grammar": grammar(),
        }

    @property
    def media(self) -> forms.Media:
        # An ES module, which imports its parts (rule-builder/) itself. (Django takes a
        # Script among the paths; django-stubs types them as strings only.)
        module = forms.Script("audiences/rule-builder.js", type="module")
        return forms.Media(
            css={"all": ["audiences/rule-builder.css"]},
            js=[module],  # type: ignore[list-item]
        )

    def get_context(self, name: str, value: Any, attrs: dict[str, Any] | None) -> dict[str, Any]:
        context = super().get_context(name, value, attrs)
        context["widget"]["config"] = json.dumps(self.config)
        return context


def with_rule_builder(form: type[Form], field: str, widget: RuleBuilderWidget) -> type[Form]:
    """A subclass of ``form`` whose ``field``, if it has one, is edited with the builder.

    The field is declared again, as a copy: the original may be shared with other forms,
    and a declared field is what the form's own subclasses inherit.
    """
    original = form.base_fields.get(field)
    if original is None:
        return form
    edited = copy.deepcopy(original)
    widget.is_required = edited.required
    edited.widget = widget
    return type(form.__name__, (form,), {field: edited})
