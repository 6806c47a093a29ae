"""The CRD YAML is generated from the models and must not drift from them."""

from __future__ import annotations

import json
from typing import Any

import yaml

from taskflow_operator import crdgen
from taskflow_operator.crd import KINDS, TASK, TASKQUEUE


def schema_of(kind: Any) -> dict[str, Any]:
    doc = crdgen.crd_document(kind)
    return doc["spec"]["versions"][0]["schema"]["openAPIV3Schema"]


def test_committed_yaml_matches_the_models() -> None:
    stale = crdgen.drift(crdgen.DEFAULT_DIRS)
    assert stale == [], f"regenerate with `python -m taskflow_operator.crdgen`: {stale}"


def test_helm_chart_carries_the_same_files() -> None:
    plain, helm = crdgen.DEFAULT_DIRS
    for kind in KINDS:
        name = crdgen.file_name(kind)
        assert (plain / name).read_text() == (helm / name).read_text()


def test_check_mode_reports_a_hand_edited_file(tmp_path: Any) -> None:
    crdgen.write([tmp_path])
    path = tmp_path / crdgen.file_name(TASK)
    path.write_text(path.read_text().replace("Attempts", "Tries"))
    assert crdgen.main(["--check", str(tmp_path)]) == 1
    assert crdgen.main(["--check", str(tmp_path / "missing")]) == 1
    crdgen.write([tmp_path])
    assert crdgen.main(["--check", str(tmp_path)]) == 0


def walk(node: Any) -> Any:
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from walk(value)
    elif isinstance(node, list):
        for value in node:
            yield from walk(value)


def test_schemas_are_structural() -> None:
    for kind in KINDS:
        for node in walk(schema_of(kind)):
            assert "$ref" not in node and "anyOf" not in node and "allOf" not in node
            assert node.get("additionalProperties", {}) is not False
            if "exclusiveMinimum" in node:
                assert node["exclusiveMinimum"] is True
        text = json.dumps(schema_of(kind))
        assert '"title"' not in text


def test_taskqueue_schema_rejects_what_the_issue_names() -> None:
    spec = schema_of(TASKQUEUE)["properties"]["spec"]
    props = spec["properties"]
    assert set(spec["required"]) == {"image", "app", "connection"}
    assert props["concurrency"]["minimum"] == 1
    assert props["replicas"]["properties"]["min"]["minimum"] == 0
    rules = [v["rule"] for v in props["replicas"]["x-kubernetes-validations"]]
    assert rules == ["self.min <= self.max"]
    assert props["autoscaling"]["properties"]["engine"]["enum"] == ["builtin", "keda"]
    assert props["autoscaling"]["properties"]["pollIntervalSeconds"]["default"] == 5.0
    assert props["autoscaling"]["properties"]["scaleDownStabilizationSeconds"]["default"] == 60.0
    assert props["replicas"]["default"] == {"min": 0, "max": 10}


def test_task_schema_keeps_any_payload_and_result() -> None:
    root = schema_of(TASK)["properties"]
    assert root["spec"]["properties"]["payload"]["x-kubernetes-preserve-unknown-fields"] is True
    assert root["status"]["properties"]["result"]["x-kubernetes-preserve-unknown-fields"] is True
    rules = [v["rule"] for v in root["spec"]["x-kubernetes-validations"]]
    assert "!(has(self.delaySeconds) && has(self.runAt))" in rules


def test_names_columns_and_category() -> None:
    tq = crdgen.crd_document(TASKQUEUE)
    assert tq["spec"]["names"]["shortNames"] == ["tq"]
    assert tq["spec"]["names"]["categories"] == ["taskflow"]
    version = tq["spec"]["versions"][0]
    assert version["subresources"] == {"status": {}}
    cols = [c["name"] for c in version["additionalPrinterColumns"]]
    assert {"Backlog", "Running", "Replicas", "Age"} <= set(cols)
    task_cols = [
        c["name"]
        for c in crdgen.crd_document(TASK)["spec"]["versions"][0]["additionalPrinterColumns"]
    ]
    assert {"Phase", "Attempts", "Age"} <= set(task_cols)


def test_rendered_yaml_round_trips() -> None:
    for kind in KINDS:
        assert yaml.safe_load(crdgen.render(kind)) == crdgen.crd_document(kind)


def undescribed(node: dict[str, Any], path: str) -> list[str]:
    """Paths of properties whose schema has no description (``kubectl explain`` shows them)."""
    out: list[str] = []
    for name, sub in (node.get("properties") or {}).items():
        here = f"{path}.{name}"
        if not str(sub.get("description") or "").strip():
            out.append(here)
        out += undescribed(sub, here)
    if isinstance(node.get("items"), dict):
        out += undescribed(node["items"], f"{path}[]")
    if isinstance(node.get("additionalProperties"), dict):
        out += undescribed(node["additionalProperties"], f"{path}{{}}")
    return out


def test_every_field_has_a_description_for_kubectl_explain() -> None:
    for kind in KINDS:  # metadata is ObjectMeta: the API server describes it
        assert undescribed(schema_of(kind), kind.kind) == [f"{kind.kind}.metadata"]


def test_the_models_check_what_the_schema_checks() -> None:
    import pydantic

    from taskflow_operator.crd.taskqueue import TaskQueueSpec

    base = {"image": "i", "app": "a:b", "connection": {"secretName": "s"}}
    ok = TaskQueueSpec.model_validate({**base, "resources": {"limits": {"memory": "256Mi"}}})
    assert ok.resources is not None and ok.resources.limits == {"memory": "256Mi"}
    for bad in (
        {"resources": {"requests": {"cpu": "1 core"}}},
        {"env": [{"name": "1BAD", "value": "x"}]},
    ):
        try:
            TaskQueueSpec.model_validate({**base, **bad})
        except pydantic.ValidationError:
            continue
        raise AssertionError(f"accepted {bad}")
