"""The engine package ``taskflow`` depends on the worker SDK and the operator only at run time:
importing any of its modules loads neither ``taskflow_worker`` nor ``taskflow_operator``
(``taskflow worker``, ``taskflow dev`` and ``taskflow operator`` reach them by name)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from taskflow.cli import main

SCRIPT = textwrap.dedent(
    """
    import importlib, pkgutil, sys
    from importlib.abc import MetaPathFinder

    BLOCKED = ("taskflow_worker", "taskflow_operator")

    class Block(MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in BLOCKED:
                raise ImportError(f"{name} imported while importing {current}")
            return None

    sys.meta_path.insert(0, Block())
    current = "taskflow"
    import taskflow
    modules = ["taskflow"] + sorted(
        info.name
        for info in pkgutil.walk_packages(taskflow.__path__, "taskflow.")
        if not info.name.endswith(".__main__")  # it runs the command line
    )
    for current in modules:
        importlib.import_module(current)
    loaded = sorted(m for m in sys.modules if m.split(".")[0] in BLOCKED)
    assert not loaded, loaded
    print(len(modules), "modules")
    """
)


def test_no_engine_module_imports_the_worker_or_the_operator() -> None:
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr
    count = int(result.stdout.split()[0])
    assert count > 30, result.stdout  # every module was walked, not just the package


def test_the_check_sees_an_import_of_the_worker() -> None:
    script = SCRIPT.replace(
        "importlib.import_module(current)\n",
        "importlib.import_module(current)\n    import taskflow_worker.loading\n",
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode != 0
    assert "ImportError: taskflow_worker imported while importing taskflow" in result.stderr


@pytest.mark.parametrize("argv", [["worker", "--app", "a:b"], ["dev", "--workers", "1"]])
def test_a_missing_worker_package_is_one_clear_line(
    argv: list[str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # An installation without the worker package (None in sys.modules fails its import).
    for name in [n for n in sys.modules if n.split(".")[0] == "taskflow_worker"]:
        monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.setitem(sys.modules, "taskflow_worker", None)
    code = main(argv)
    _, err = capsys.readouterr()
    assert code == 2
    assert err.strip().splitlines() == [
        f"taskflow {argv[0]}: the worker needs the taskflow_worker package, which is not "
        "installed; install the taskflow distribution with its worker SDK, or run workers "
        "from the worker image"
    ]
