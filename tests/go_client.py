"""The Go example client (``examples/go-client``), built once per test session.

Registered as a plugin by ``tests/conftest.py`` so any test can ask for ``go_client_binary``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

GO_CLIENT_DIR = Path(__file__).resolve().parents[1] / "examples" / "go-client"


def build_go_client(output: Path) -> Path:
    """Build ``examples/go-client`` into ``output`` (modules from the Go proxy, pinned by
    go.sum); raises ``subprocess.CalledProcessError`` with the compiler output on failure."""
    go = shutil.which("go")
    if go is None:
        raise FileNotFoundError("go")
    env = {**os.environ, "GOFLAGS": "-mod=readonly -buildvcs=false"}
    subprocess.run(
        [go, "build", "-o", str(output), "."],
        cwd=GO_CLIENT_DIR,
        env=env,
        check=True,
        capture_output=True,
        text=True,
        timeout=900,
    )
    return output


@pytest.fixture(scope="session")
def go_client_binary(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The Go example client, built once per session; skips when ``go`` is not on PATH."""
    if shutil.which("go") is None:
        pytest.skip("the Go toolchain (go) is not on PATH: cannot build examples/go-client")
    output = tmp_path_factory.mktemp("go-client") / "go-client"
    try:
        return build_go_client(output)
    except subprocess.CalledProcessError as exc:
        pytest.fail(f"go build of examples/go-client failed:\n{exc.stdout}{exc.stderr}")
