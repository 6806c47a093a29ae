"""The committed generated stubs match tasks.proto, and the client's dependencies can load them.

Regenerate with ``scripts/gen-proto.sh`` (Python) and ``examples/go-client/gen.sh`` (Go).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
PY_STUBS = REPO_ROOT / "client" / "taskflow_client" / "v1"
GO_CLIENT = REPO_ROOT / "examples" / "go-client"
GO_STUBS = Path("gen") / "taskflowv1"
PY_FILES = ("tasks_pb2.py", "tasks_pb2.pyi", "tasks_pb2_grpc.py", "tasks_pb2_grpc.pyi")
GO_FILES = ("tasks.pb.go", "tasks_grpc.pb.go")

# Lines naming the generator's version: they change with the tools, not with the proto. The
# versions themselves are checked against the client's declared dependencies below.
_PY_VERSION_LINES = re.compile(
    r"^(# Protobuf Python Version: .*|GRPC_GENERATED_VERSION = .*)$", re.MULTILINE
)
_PY_RUNTIME_CHECK = re.compile(r"(ValidateProtobufRuntimeVersion\(\s*\S+,)\s*\d+,\s*\d+,\s*\d+,")
_GO_VERSION_LINES = re.compile(r"^// \t(protoc|protoc-gen-go|protoc-gen-go-grpc) .*$", re.MULTILINE)


def _normalized_python(text: str) -> str:
    return _PY_RUNTIME_CHECK.sub(r"\1 N, N, N,", _PY_VERSION_LINES.sub("<version>", text))


def _assert_same(
    committed_dir: Path, generated_dir: Path, names: tuple[str, ...], how: str
) -> None:
    normalize = _normalized_python if names == PY_FILES else lambda t: _GO_VERSION_LINES.sub("", t)
    stale = [
        name
        for name in names
        if not (committed_dir / name).exists()
        or normalize((committed_dir / name).read_text())
        != normalize((generated_dir / name).read_text())
    ]
    assert not stale, f"generated code is out of date with tasks.proto: {stale}; run {how}"


def test_python_stubs_match_the_proto(tmp_path: Path) -> None:
    pytest.importorskip("grpc_tools", reason="grpcio-tools is needed to regenerate the stubs")
    pytest.importorskip("mypy_protobuf", reason="mypy-protobuf is needed to regenerate the stubs")
    subprocess.run(
        ["bash", str(REPO_ROOT / "scripts" / "gen-proto.sh"), str(tmp_path)],
        env={**os.environ, "PYTHON": sys.executable},
        check=True,
        capture_output=True,
        timeout=120,
    )
    _assert_same(PY_STUBS, tmp_path, PY_FILES, "scripts/gen-proto.sh")


def test_python_stubs_import_relatively() -> None:
    grpc_module = (PY_STUBS / "tasks_pb2_grpc.py").read_text()
    assert "from . import tasks_pb2 as" in grpc_module
    for name in PY_FILES:
        assert not re.search(r"^(from|import) taskflow\.", (PY_STUBS / name).read_text(), re.M)


def _minimum(requirement: str, package: str) -> tuple[int, ...]:
    match = re.fullmatch(rf"{package}>=([\d.]+)", requirement.replace(" ", ""))
    assert match, f"expected {package}>=X.Y.Z in client/pyproject.toml, got {requirement!r}"
    return tuple(int(p) for p in match.group(1).split("."))


def test_declared_dependencies_can_load_the_committed_stubs() -> None:
    project = tomllib.loads((REPO_ROOT / "client" / "pyproject.toml").read_text())["project"]
    requirements = {re.split(r"[<>=!~ ]", r)[0]: r for r in project["dependencies"]}
    assert set(requirements) == {"grpcio", "protobuf"}

    grpc_module = (PY_STUBS / "tasks_pb2_grpc.py").read_text()
    grpc_version = re.search(r"GRPC_GENERATED_VERSION = '([\d.]+)'", grpc_module)
    assert grpc_version
    generated_grpc = tuple(int(p) for p in grpc_version.group(1).split("."))
    assert _minimum(requirements["grpcio"], "grpcio") >= generated_grpc

    pb2_module = (PY_STUBS / "tasks_pb2.py").read_text()
    gencode = re.search(
        r"ValidateProtobufRuntimeVersion\(\s*\S+,\s*(\d+),\s*(\d+),\s*(\d+),", pb2_module
    )
    assert gencode
    generated_protobuf = tuple(int(p) for p in gencode.groups())
    assert _minimum(requirements["protobuf"], "protobuf") >= generated_protobuf


def _go_plugins() -> dict[str, str] | None:
    go = shutil.which("go")
    extra = []
    if go is not None:
        gopath = subprocess.run([go, "env", "GOPATH"], capture_output=True, text=True).stdout
        extra = [str(Path(p) / "bin") for p in gopath.strip().split(os.pathsep) if p]
    search = os.pathsep.join([os.environ.get("PATH", ""), *extra])
    found = {
        name: shutil.which(name, path=search) for name in ("protoc-gen-go", "protoc-gen-go-grpc")
    }
    if any(path is None for path in found.values()):
        return None
    return {name: str(path) for name, path in found.items()}


def test_go_stubs_match_the_proto(tmp_path: Path) -> None:
    pytest.importorskip("grpc_tools", reason="grpcio-tools provides protoc")
    plugins = _go_plugins()
    if plugins is None:
        pytest.skip("protoc-gen-go and protoc-gen-go-grpc are not installed (see gen.sh)")
    bin_dirs = os.pathsep.join(sorted({str(Path(p).parent) for p in plugins.values()}))
    subprocess.run(
        ["bash", str(GO_CLIENT / "gen.sh"), str(tmp_path)],
        env={
            **os.environ,
            "PYTHON": sys.executable,
            "PATH": f"{bin_dirs}{os.pathsep}{os.environ.get('PATH', '')}",
        },
        check=True,
        capture_output=True,
        timeout=120,
    )
    _assert_same(GO_CLIENT / GO_STUBS, tmp_path / GO_STUBS, GO_FILES, "examples/go-client/gen.sh")
