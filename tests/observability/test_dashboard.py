"""The Grafana dashboard in the chart graphs only metrics TaskFlow exports, by their labels."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from tests.observability.exported import exported_names, registries

CHART = Path(__file__).resolve().parents[2] / "helm" / "taskflow"
DASHBOARD = CHART / "dashboards" / "taskflow.json"
METRIC = re.compile(r"\btaskflow_[a-z0-9_]+\b")
GROUPING = re.compile(r"\bby \(([^)]*)\)")


def expressions(node: Any) -> list[str]:
    """Every PromQL expression of the dashboard: panel targets and variable queries."""
    found: list[str] = []
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("expr", "definition") and isinstance(value, str):
                found.append(value)
            else:
                found += expressions(value)
    elif isinstance(node, list):
        for item in node:
            found += expressions(item)
    return found


def test_every_metric_in_the_dashboard_is_exported() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    exprs = expressions(dashboard)
    assert len(exprs) > 20
    used = {name for e in exprs for name in METRIC.findall(e)}
    exported = exported_names()
    missing = sorted(used - set(exported))
    assert not missing, f"the dashboard graphs metrics nothing exports: {missing}"
    # rate() and increase() only make sense of counters and histogram buckets
    for e in exprs:
        for name in re.findall(r"(?:rate|increase)\((taskflow_[a-z0-9_]+)", e):
            assert exported[name] in ("counter", "histogram"), (name, e)


def test_the_dashboard_groups_only_by_exported_labels() -> None:
    labels = {"le"}
    for registry in registries().values():
        for family in registry.collect():
            labels |= set(getattr(family, "_labelnames", ()))
            for sample in family.samples:
                labels |= set(sample.labels)
    for registry in registries().values():
        for collector in list(registry._collector_to_names):  # labelled metrics
            labels |= set(getattr(collector, "_labelnames", ()))
    exprs = expressions(json.loads(DASHBOARD.read_text()))
    for e in exprs:
        for group in GROUPING.findall(e):
            for label in (g.strip() for g in group.split(",")):
                assert label in labels, (label, e)


def test_dashboard_variables_select_namespace_and_queue() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    names = [v["name"] for v in dashboard["templating"]["list"]]
    assert names == ["datasource", "namespace", "queue"]
    assert dashboard["uid"] == "taskflow"
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
