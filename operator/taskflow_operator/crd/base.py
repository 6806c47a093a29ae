"""What every custom resource model shares: camelCase fields, conditions, kind metadata."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

GROUP = "taskflow.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
CATEGORY = "taskflow"


class CrdModel(BaseModel):
    """Base of spec and status models: Kubernetes spells fields in camelCase."""

    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="ignore", frozen=True
    )


def nested(model: type[BaseModel], description: str) -> Any:
    """An optional sub-object; its default is the model's defaults, spelled out (CEL rules on
    the sub-object are checked against the default too)."""
    default = model().model_dump(by_alias=True, mode="json", exclude_none=True)
    return Field(
        default_factory=model, description=description, json_schema_extra={"default": default}
    )


def cel(*rules: tuple[str, str]) -> dict[str, Any]:
    """``x-kubernetes-validations`` for a model's ``json_schema_extra``: (rule, message) pairs."""
    return {"x-kubernetes-validations": [{"rule": r, "message": m} for r, m in rules]}


class Condition(CrdModel):
    """A Kubernetes-style condition (``type`` is unique within the list)."""

    type: str = Field(description="Ready, Scaling, Degraded, Submitted or Finished")
    status: str = Field(description="True, False or Unknown")
    reason: str = Field(default="", description="CamelCase machine-readable cause")
    message: str = Field(default="", description="Human-readable detail")
    last_transition_time: str | None = Field(
        default=None, description="When status last changed (RFC 3339)"
    )
    observed_generation: int | None = Field(default=None, description="Spec generation seen")


CONDITIONS_SCHEMA_EXTRA: dict[str, Any] = {
    "x-kubernetes-list-type": "map",
    "x-kubernetes-list-map-keys": ["type"],
}


@dataclass(frozen=True)
class PrinterColumn:
    name: str
    json_path: str
    type: str = "integer"
    description: str = ""
    priority: int = 0

    def render(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "type": self.type, "jsonPath": self.json_path}
        if self.description:
            out["description"] = self.description
        if self.priority:
            out["priority"] = self.priority
        return out


AGE = PrinterColumn("Age", ".metadata.creationTimestamp", "date")


@dataclass(frozen=True)
class Kind:
    """One custom resource kind: its models and how ``kubectl`` presents it."""

    kind: str
    plural: str
    spec: type[CrdModel]
    status: type[CrdModel]
    description: str
    short_names: tuple[str, ...] = ()
    columns: tuple[PrinterColumn, ...] = field(default_factory=tuple)
    #: CEL rules on the whole object, (rule, message) pairs: the only place that can check
    #: ``metadata.name``.
    rules: tuple[tuple[str, str], ...] = ()

    @property
    def singular(self) -> str:
        return self.kind.lower()

    @property
    def crd_name(self) -> str:
        return f"{self.plural}.{GROUP}"
