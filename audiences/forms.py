"""Admin form fields of audience conditions."""

from __future__ import annotations

from typing import Any

from audiences.conditions import as_condition_list
from loyalty.admin import PrettyJSONField


class ConditionsFormField(PrettyJSONField):
    """Conditions typed or built in the admin, taken as the API takes them: a single
    condition object where an array is expected counts as a one-element array."""

    def to_python(self, value: Any) -> Any:
        data = super().to_python(value)
        return None if data is None else as_condition_list(data)
