"""The client distribution imports and builds a client without any server-side dependency."""

from __future__ import annotations

import subprocess
import sys
import textwrap

BLOCKED = ("kopf", "redis", "psycopg", "psycopg_pool", "pydantic", "kubernetes", "taskflow")

SCRIPT = textwrap.dedent(
    """
    import sys
    from importlib.abc import MetaPathFinder

    BLOCKED = {blocked!r}

    class Block(MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in BLOCKED:
                raise ImportError(f"{{name}} is blocked for this test")
            return None

    sys.meta_path.insert(0, Block())
    for name in list(sys.modules):
        if name.split(".")[0] in BLOCKED:
            del sys.modules[name]

    import taskflow_client

    client = taskflow_client.Client("localhost:1")
    client.close()
    loaded = sorted({{m.split(".")[0] for m in sys.modules}} & BLOCKED)
    assert not loaded, loaded
    print("imported", taskflow_client.__version__)
    """
)


def test_client_imports_without_server_dependencies() -> None:
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT.format(blocked=set(BLOCKED))],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("imported ")


def test_the_blocker_really_blocks() -> None:
    script = SCRIPT.format(blocked=set(BLOCKED)).replace(
        "import taskflow_client\n", "import taskflow_client\nimport pydantic\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60
    )
    assert result.returncode != 0
    assert "pydantic is blocked" in result.stderr
