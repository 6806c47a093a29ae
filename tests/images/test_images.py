"""What the images of hack/build-images.sh contain: each process's dependencies and no more,
a non-root user, nothing of the checkout beyond the packages (no .git, tests, local data)."""

from __future__ import annotations

import json
import os
import tarfile
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from tests.k8s.controlplane import ControlPlaneError
from tests.k8s.realnode import Image, built_images, images_unavailable_reason

SITE = "opt/taskflow/lib/python3.11/site-packages/"


@dataclass(frozen=True)
class Contents:
    config: dict[str, Any]
    paths: frozenset[str]

    def packages(self) -> set[str]:
        return {p[len(SITE) :].split("/")[0] for p in self.paths if p.startswith(SITE)}


@cache
def contents(archive: Path) -> Contents:
    """The image's configuration and every path of its layers (a docker-archive tar)."""
    with tarfile.open(archive) as outer:
        manifest = json.load(outer.extractfile("manifest.json"))[0]  # type: ignore[arg-type]
        config = json.load(outer.extractfile(manifest["Config"]))  # type: ignore[arg-type]
        paths: set[str] = set()
        for layer in manifest["Layers"]:
            with tarfile.open(fileobj=outer.extractfile(layer)) as inner:
                paths |= {m.name.removeprefix("./") for m in inner}
    return Contents(config["config"], frozenset(paths))


@pytest.fixture(scope="module")
def images() -> dict[str, Image]:
    try:
        found = built_images()
    except ControlPlaneError as error:
        pytest.skip(str(error))
    reason = images_unavailable_reason(found)
    if reason:
        if os.environ.get("TASKFLOW_REALNODE_REQUIRED"):
            pytest.fail(reason, pytrace=False)
        pytest.skip(reason)
    return found


def test_worker_image_runs_the_examples_without_the_kubernetes_client(
    images: dict[str, Image],
) -> None:
    worker = contents(images["worker"].archive)
    packages = worker.packages()
    assert {"taskflow", "taskflow_worker", "taskflow_client", "redis", "psycopg"} <= packages
    assert f"{SITE}taskflow_worker/examples.py" in worker.paths
    assert not packages & {"kopf", "kubernetes", "taskflow_operator"}
    assert "prometheus_client" in packages  # workers serve /metrics
    assert worker.config["Entrypoint"] == ["taskflow"]
    assert "PYTHONPATH=/app" in worker.config["Env"]


def test_api_image_has_the_server_and_the_operator(images: dict[str, Image]) -> None:
    packages = contents(images["api"].archive).packages()
    assert {"taskflow", "taskflow_operator", "kopf", "kubernetes", "grpc_health"} <= packages


@pytest.mark.parametrize("name", ["api", "worker"])
def test_image_runs_as_uid_10001_and_ships_no_checkout_files(
    images: dict[str, Image], name: str
) -> None:
    image = contents(images[name].archive)
    assert image.config["User"] == "10001:10001"
    assert "etc/passwd" in image.paths
    leaked = [
        p
        for p in image.paths
        if p.startswith(("src/", "app/")) and p.rstrip("/") not in ("src", "app")
    ]
    assert not leaked, f"checkout files in the {name} image: {sorted(leaked)[:10]}"
    for marker in (".git/", "tests/", ".venv/", ".taskflow/"):
        assert not any(f"/{marker}" in f"/{p}" for p in image.paths if not p.startswith(SITE)), (
            marker
        )
