"""OpenAPI schema components declared in code, and the hook that adds them to the schema.

``component``/``enum`` declare a named schema (the conditions, the sort fields, the
property filters) and return a reference to it. ``postprocess_schema`` adds them, and
points every enum a parameter writes inline at the component with the same values, so
that a generated client has one type per enum.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from typing import Any

from drf_spectacular.drainage import warn

SCHEMAS = "#/components/schemas/"

_COMPONENTS: dict[str, dict[str, Any]] = {}


def component(name: str, schema: Mapping[str, Any]) -> dict[str, str]:
    """Declare the schema component ``name`` (added by ``postprocess_schema``); return a
    reference to it. One name holds one schema."""
    declared = _COMPONENTS.setdefault(name, dict(schema))
    if declared != schema:
        raise ValueError(f"Two schema components are named {name}.")
    return {"$ref": SCHEMAS + name}


def enum(name: str, values: Iterable[str], description: str | None = None) -> dict[str, str]:
    """Declare a string enum component; return a reference to it."""
    schema: dict[str, Any] = {"type": "string", "enum": list(values)}
    if description:
        schema["description"] = description
    return component(name, schema)


def postprocess_schema(result: dict[str, Any], generator: Any, **kwargs: Any) -> dict[str, Any]:
    """drf-spectacular's post-processing hook, after its enum hook: add the components
    declared in code, and give every enum one component."""
    schemas = result.setdefault("components", {}).setdefault("schemas", {})
    for name, schema in _COMPONENTS.items():
        if schemas.setdefault(name, copy.deepcopy(schema)) != schema:
            warn(f"The schema component {name} is declared in code and by a serializer.")
    by_values = {
        frozenset(schema["enum"]) - {"", None}: name
        for name, schema in schemas.items()
        if "enum" in schema
    }
    for item in result["paths"].values():
        for operation in item.values():
            for parameter in operation.get("parameters", []):
                parameter["schema"] = _enum_refs(parameter["schema"], by_values)
    result["components"]["schemas"] = dict(sorted(schemas.items()))
    return result


def _enum_refs(schema: dict[str, Any], by_values: Mapping[frozenset[Any], str]) -> dict[str, Any]:
    """``schema`` with an inline enum (or an array's) replaced by its component."""
    if schema.get("type") == "array":
        return {**schema, "items": _enum_refs(schema["items"], by_values)}
    name = by_values.get(frozenset(schema["enum"])) if "enum" in schema else None
    return {"$ref": SCHEMAS + name} if name else schema
