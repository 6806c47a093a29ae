"""Pydantic JSON Schema → Kubernetes structural OpenAPI v3 schema.

Structural schemas have no ``$ref``, no ``anyOf`` of types, a ``type`` on every node (or
``x-kubernetes-preserve-unknown-fields`` / ``x-kubernetes-int-or-string``), boolean
``exclusiveMinimum`` and no ``additionalProperties: false``.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

_DROP = {"title", "examples"}


def structural(model: type[BaseModel]) -> dict[str, Any]:
    raw = model.model_json_schema(by_alias=True, mode="validation")
    defs: dict[str, Any] = raw.pop("$defs", {})
    return _convert(raw, defs)


def _convert(node: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    node = _resolve(dict(node), defs)
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in _DROP or (key == "default" and value is None):
            continue
        if key == "properties":
            out[key] = {name: _convert(sub, defs) for name, sub in value.items()}
        elif key == "items":
            out[key] = _convert(value, defs)
        elif key == "additionalProperties":
            if isinstance(value, dict):
                out[key] = _convert(value, defs)
        elif key == "exclusiveMinimum":
            out["minimum"] = value
            out["exclusiveMinimum"] = True
        elif key == "exclusiveMaximum":
            out["maximum"] = value
            out["exclusiveMaximum"] = True
        elif key == "const":
            out["enum"] = [value]
        else:
            out[key] = value
    if "type" not in out and not _untyped_ok(out):
        out["x-kubernetes-preserve-unknown-fields"] = True
    return out


def _resolve(node: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    """Inline ``$ref``, single ``allOf`` and nullable ``anyOf`` until none is left."""
    while True:
        if "$ref" in node:
            target = defs[node.pop("$ref").rsplit("/", 1)[-1]]
            node = {**target, **node}
        elif "allOf" in node and len(node["allOf"]) == 1:
            node = {**node.pop("allOf")[0], **node}
        elif "anyOf" in node:
            node = _collapse_any_of(node)
        else:
            return node


def _collapse_any_of(node: dict[str, Any]) -> dict[str, Any]:
    options = [o for o in node.pop("anyOf") if o.get("type") != "null"]
    types = {o.get("type") for o in options}
    if len(options) == 1:
        return {**options[0], **node}
    if types == {"integer", "string"}:
        # The string's constraints (a quantity's pattern) apply to the string form.
        (text,) = (o for o in options if o.get("type") == "string")
        kept = {k: v for k, v in text.items() if k in ("pattern", "maxLength")}
        return {"x-kubernetes-int-or-string": True, **kept, **node}
    raise ValueError(f"cannot express anyOf {options} in a structural schema")


def _untyped_ok(node: dict[str, Any]) -> bool:
    return bool(
        node.get("x-kubernetes-preserve-unknown-fields") or node.get("x-kubernetes-int-or-string")
    )
