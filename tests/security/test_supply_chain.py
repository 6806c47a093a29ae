"""The images install exactly the lock files, and the SBOM lists what they install."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
IMAGES = {"api": ROOT / "Dockerfile", "worker": ROOT / "worker-image" / "Dockerfile"}


def pins(lock: Path) -> dict[str, str]:
    return {
        m.group(1).lower(): m.group(2)
        for m in re.finditer(r"^([A-Za-z0-9._-]+)==(\S+)", lock.read_text(), re.MULTILINE)
    }


@pytest.mark.parametrize("image", sorted(IMAGES))
def test_each_image_installs_its_lock_with_hashes_and_nothing_from_an_index(image: str) -> None:
    text = IMAGES[image].read_text()
    assert f"pip install --require-hashes --no-deps -r requirements/{image}.lock" in text
    installs = re.findall(r"pip install ([^\n]+)", text)
    assert all("--no-deps" in line for line in installs), installs
    lock = ROOT / "requirements" / f"{image}.lock"
    assert "--hash=sha256:" in lock.read_text()
    assert "taskflow" not in pins(lock) and "taskflow-client" not in pins(lock)
    assert all(FROM.split("@")[1].startswith("sha256:") for FROM in re.findall(
        r"^ARG BASE=(\S+)", text, re.MULTILINE
    ))  # fmt: skip


def test_the_sbom_lists_every_locked_package_with_its_hashes(tmp_path: Path) -> None:
    subprocess.run([str(ROOT / "scripts" / "sbom"), str(tmp_path)], check=True, timeout=60)
    for image in IMAGES:
        bom = json.loads((tmp_path / f"{image}.cdx.json").read_text())
        assert (bom["bomFormat"], bom["specVersion"]) == ("CycloneDX", "1.5")
        listed = {c["name"]: c for c in bom["components"]}
        for name, version in pins(ROOT / "requirements" / f"{image}.lock").items():
            component = listed[name]
            assert component["purl"] == f"pkg:pypi/{name}@{version}"
            assert component["hashes"] and all(h["alg"] == "SHA-256" for h in component["hashes"])
        assert {"taskflow", "taskflow-client"} <= set(listed)
