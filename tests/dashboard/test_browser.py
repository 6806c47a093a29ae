"""The dashboard in headless Chromium (Debian's ``chromium``, driven by Playwright), against a
running ``taskflow dev --demo``: the pages load, a submitted task shows up and changes state,
a failed task's traceback is two clicks from the first page, a DAG run is drawn coloured by
state.

Screenshots go to ``$TASKFLOW_TEST_ARTIFACTS`` (else a temporary directory, printed at the
end). ``TASKFLOW_DOCS_SCREENSHOTS=1`` also writes the main pages to ``docs/img/``.

Without Chromium or Playwright the tests skip, saying which is missing, unless
``TASKFLOW_BROWSER_REQUIRED=1`` (``scripts/test`` sets it once it has installed Chromium).
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from taskflow_client import Client
from tests.test_dev import DevProcess

REPO = Path(__file__).resolve().parents[2]
DOCS_IMG = REPO / "docs" / "img"
DEADLINE_MS = 30_000
QUEUE = "browser"  # the demo fills "default"; the tests' own tasks go here

SCHEDULES = """
schedules:
  - name: nightly-report
    cron: "0 3 * * *"
    timezone: Europe/Paris
    concurrency_policy: Forbid
    task: {queue: default, handler: generate_report, payload: {name: nightly}}
  - name: cache-warmup
    cron: "*/15 * * * *"
    task: {queue: default, handler: noop}
"""


def _chromium() -> str | None:
    for candidate in (os.environ.get("TASKFLOW_CHROMIUM"), "chromium", "chromium-browser"):
        if candidate and (found := shutil.which(candidate)):
            return found
    return None


def _missing() -> str | None:
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "Playwright for Python is not installed (pip install -e '.[dev]')"
    if _chromium() is None:
        return (
            "Debian's chromium is not installed "
            "(apt-get install chromium; scripts/test does it as root)"
        )
    return None


@pytest.fixture(scope="module")
def chromium_path() -> str:
    missing = _missing()
    if missing:
        if os.environ.get("TASKFLOW_BROWSER_REQUIRED") == "1":
            pytest.fail(f"TASKFLOW_BROWSER_REQUIRED=1 but {missing}")
        pytest.skip(missing)
    path = _chromium()
    assert path is not None
    return path


@pytest.fixture(scope="module")
def artifacts() -> Iterator[Path]:
    given = os.environ.get("TASKFLOW_TEST_ARTIFACTS")
    path = Path(given) if given else Path(tempfile.mkdtemp(prefix="taskflow-dashboard-"))
    path.mkdir(parents=True, exist_ok=True)
    yield path
    print(f"\ndashboard screenshots: {path}")


@pytest.fixture(scope="module")
def dev(chromium_path: str) -> Iterator[DevProcess]:
    """``taskflow dev --demo`` with a second queue for the tests' tasks and two schedules."""
    root = Path(tempfile.mkdtemp(prefix="taskflow-browser-"))
    (root / "schedules.yaml").write_text(SCHEDULES)
    extra = ["--demo", "--queue", "default", "--queue", QUEUE]
    proc = DevProcess(
        root / "data", root / "dev.log", [*extra, "--schedules", str(root / "schedules.yaml")]
    )
    try:
        proc.started()
        yield proc
    finally:
        proc.cleanup()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def dashboard_url(dev: DevProcess) -> str:
    text = "".join(dev.output)
    match = re.search(r"dashboard\s+(http://\S+/dashboard/)", text)
    assert match, f"taskflow dev printed no dashboard URL: {text}"
    return match.group(1)


@pytest.fixture(scope="module")
def browser(chromium_path: str) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        args = ["--no-sandbox"] if os.geteuid() == 0 else []
        b = p.chromium.launch(executable_path=chromium_path, args=args)
        yield b
        b.close()


class Page:
    """A tab on the dashboard that fails the test on any script error."""

    def __init__(self, browser: Any, base: str, artifacts: Path, width: int = 1280) -> None:
        self.page = browser.new_page(viewport={"width": width, "height": 860})
        self.page.set_default_timeout(DEADLINE_MS)
        self.base = base
        self.artifacts = artifacts
        self.errors: list[str] = []
        #: A lookup of an unknown id answers 404, which the browser logs as an error.
        self.allow_404 = False
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)

    def open(self, hash_: str) -> Any:
        self.page.goto(f"{self.base}{hash_}")
        return self.page

    def shot(self, name: str, *, docs: str | None = None, full: bool = False) -> None:
        path = self.artifacts / f"{name}.png"
        self.page.screenshot(path=str(path), full_page=full)
        if docs and os.environ.get("TASKFLOW_DOCS_SCREENSHOTS") == "1":
            DOCS_IMG.mkdir(parents=True, exist_ok=True)
            shutil.copy(path, DOCS_IMG / docs)

    def close(self) -> None:
        self.page.close()
        not_found = "the server responded with a status of 404"
        errors = [e for e in self.errors if not (self.allow_404 and not_found in e)]
        assert errors == [], errors


@pytest.fixture
def tab(browser: Any, dashboard_url: str, artifacts: Path) -> Iterator[Page]:
    page = Page(browser, dashboard_url, artifacts)
    yield page
    page.close()


@pytest.fixture
def client(dev: DevProcess) -> Iterator[Client]:
    with Client(dev.addr) as c:
        yield c


def expect(target: Any) -> Any:
    from playwright.sync_api import expect as pw_expect

    pw_expect.set_options(timeout=DEADLINE_MS)
    return pw_expect(target)


def test_every_page_loads(tab: Page, dev: DevProcess) -> None:
    page = tab.open("#/queues")
    expect(page.get_by_role("heading", name="Queues", exact=True)).to_be_visible()
    expect(page.get_by_role("row").filter(has_text="default").first).to_be_visible()
    # the charts fill in as the demo runs: a throughput chart with a line, not "no samples"
    chart = page.get_by_role("img", name=re.compile(r"^Throughput of default, tasks.s: now"))
    expect(chart).to_be_visible()
    expect(page.locator("svg.chart polyline").first).to_be_attached()
    if os.environ.get("TASKFLOW_DOCS_SCREENSHOTS") == "1":
        page.wait_for_timeout(90_000)  # a minute and a half of history for the picture
    tab.shot("queues", docs="dashboard-queues.png", full=True)

    for hash_, heading in [
        ("#/tasks", "Tasks"),
        ("#/dags", "DAG runs"),
        ("#/workers", "Workers"),
        ("#/schedules", "Schedules"),
    ]:
        page = tab.open(hash_)
        expect(page.locator("h1")).to_contain_text(heading)
        expect(page.locator("nav a[aria-current=page]")).to_have_text(heading)
    expect(page.get_by_role("row").filter(has_text="nightly-report")).to_contain_text("Forbid")
    tab.shot("schedules")

    page = tab.open("#/workers")
    rows = page.locator("tbody tr")
    expect(rows).to_have_count(2)  # taskflow dev runs two workers
    expect(rows.first).to_contain_text("default/browser")
    tab.shot("workers")


def test_a_submitted_task_appears_and_changes_state(tab: Page, client: Client) -> None:
    task_id = client.submit(QUEUE, "sleep", {"seconds": 4})
    page = tab.open(f"#/tasks?queue={QUEUE}")
    row = page.get_by_role("row").filter(has=page.get_by_role("link", name=f"task {task_id}"))
    expect(row).to_be_visible()
    expect(row.locator(".badge")).to_have_text("running")
    expect(row.locator(".badge")).to_have_text("succeeded")

    page.get_by_role("link", name=f"task {task_id}").click()
    expect(page.locator("h1")).to_contain_text("sleep")
    expect(page.locator("pre[aria-label=result]")).to_contain_text('"slept": 4')
    expect(page.get_by_role("button", name="Cancel task")).to_have_count(0)  # read-only


def test_a_failed_task_shows_its_traceback_in_two_clicks(tab: Page, client: Client) -> None:
    task_id = client.submit(QUEUE, "fail", {"message": "card declined"})
    assert client.wait(task_id, timeout=60).state == "failed"
    page = tab.open("#/queues")
    page.get_by_role("link", name=re.compile(rf"dead letters in {QUEUE}$")).click()  # 1
    page.get_by_role("link", name=f"task {task_id}").click()  # 2
    expect(page.locator(".error-box")).to_have_text("PermanentError: card declined")
    traceback = page.locator("pre[aria-label=traceback]")
    expect(traceback).to_contain_text("Traceback (most recent call last)")
    expect(traceback).to_contain_text("PermanentError: card declined")
    expect(page.locator("tbody tr").first).to_contain_text("#1")
    tab.shot("task-failed", docs="dashboard-task.png", full=True)


STATE_FILL = {"succeeded": "#15803d", "failed": "#b91c1c", "skipped": "#e5e7eb"}


def test_a_dag_run_is_drawn_with_its_steps_coloured_by_state(tab: Page, client: Client) -> None:
    steps = [
        {"name": "extract", "handler": "collect", "payload": {"table": "orders"}},
        {"name": "clean", "handler": "collect", "depends_on": ["extract"]},
        {"name": "enrich", "handler": "collect", "depends_on": ["extract"]},
        {
            "name": "validate",
            "handler": "fail",
            "depends_on": ["extract"],
            "payload": {"message": "schema mismatch: column 'total' missing"},
        },
        {"name": "load", "handler": "collect", "depends_on": ["clean", "enrich"]},
        {"name": "report", "handler": "collect", "depends_on": ["load", "validate"]},
    ]
    run_id = client.submit_dag(steps, QUEUE, name="nightly-etl", failure_policy="continue")
    run = client.wait_dag(run_id, timeout=60)
    assert run.state == "failed"

    page = tab.open("#/dags")
    page.get_by_role("link", name=re.compile(rf"run nightly-etl {run_id}")).click()
    graph = page.get_by_role("group", name=re.compile("^Graph of run nightly-etl"))
    expect(graph).to_be_visible()
    nodes = graph.locator("a.node")
    expect(nodes).to_have_count(len(steps))
    want = {"extract": "succeeded", "clean": "succeeded", "enrich": "succeeded"}
    want |= {"load": "succeeded", "validate": "failed", "report": "skipped"}
    for name, state in want.items():
        node = graph.get_by_role("link", name=re.compile(rf"^step {name}: {state}"))
        expect(node).to_have_count(1)
        assert node.locator("rect").get_attribute("fill") == STATE_FILL[state]
    assert len(graph.locator("path.edge").all()) == 7
    expect(page.get_by_role("list", name="Legend")).to_contain_text("skipped")
    tab.shot("dag-run", docs="dashboard-dag.png", full=True)

    graph.get_by_role("link", name=re.compile("^step validate: failed")).click()
    expect(page.locator("pre[aria-label=traceback]")).to_contain_text("schema mismatch")


def test_keyboard_and_a_phone(browser: Any, dashboard_url: str, artifacts: Path) -> None:
    tab = Page(browser, dashboard_url, artifacts, width=390)
    try:
        page = tab.open("#/queues")
        expect(page.get_by_role("heading", name="Queues", exact=True)).to_be_visible()
        page.keyboard.press("Tab")
        expect(page.get_by_role("link", name="Skip to content")).to_be_focused()
        tasks = page.get_by_role("navigation", name="Pages").get_by_role("link", name="Tasks")
        for _ in range(4):
            page.keyboard.press("Tab")
            if tasks.evaluate("el => el === document.activeElement"):
                break
        expect(tasks).to_be_focused()
        page.keyboard.press("Enter")
        expect(page.locator("h1")).to_contain_text("Tasks")
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 390, f"the page is {width}px wide on a 390px screen"
        page = tab.open("#/queues")
        page.wait_for_timeout(1000)
        tab.shot("queues-phone", full=True)
    finally:
        tab.close()


def test_the_search_box_finds_a_task_or_a_run_by_id(tab: Page, client: Client) -> None:
    task_id = client.submit(QUEUE, "add", {"a": 20, "b": 22})
    assert client.wait(task_id, timeout=60).state == "succeeded"
    page = tab.open("#/queues")
    search = page.get_by_role("searchbox", name="Task or run id")
    search.fill(task_id)
    search.press("Enter")
    expect(page.locator("h1")).to_contain_text("add")
    expect(page.locator("pre[aria-label=result]")).to_have_text("42")

    unknown = "0190a4c2-0000-7000-8000-000000000000"
    tab.allow_404 = True
    search.fill(unknown)
    search.press("Enter")
    expect(page.get_by_role("alert")).to_have_text(f"No task or run {unknown}")

    search.fill(task_id.replace("-", "")[:12])  # a prefix lists the tasks it matches
    search.press("Enter")
    expect(page.get_by_role("link", name=f"task {task_id}")).to_be_visible()
    expect(page.locator("tbody tr")).to_have_count(1)


TOKEN = "dashboard-test-token"


@pytest.fixture
def api_with_token_and_actions(
    chromium_path: str, redis_url: str, database_url: str, tmp_path: Path
) -> Iterator[tuple[str, str]]:
    """``taskflow api`` with a token and the dashboard's actions on (and no worker, so a task
    waits to be cancelled): its gRPC address and its dashboard's URL."""
    import asyncio
    import concurrent.futures
    import subprocess
    import sys
    import time
    import urllib.request

    from taskflow.embedded import free_port
    from taskflow.store import apply_migrations

    # Playwright's sync API runs an event loop in this thread: migrate from another one.
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, apply_migrations(database_url)).result()
    grpc_port, http_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("TASKFLOW_")}
    env |= {
        "TASKFLOW_REDIS_URL": redis_url,
        "TASKFLOW_DATABASE_URL": database_url,
        "TASKFLOW_API_TOKEN": TOKEN,
        "TASKFLOW_DASHBOARD_ACTIONS": "1",
    }
    argv = [sys.executable, "-m", "taskflow", "api", "--host", "127.0.0.1"]
    argv += ["--grpc-port", str(grpc_port), "--http-port", str(http_port)]
    with (tmp_path / "api.log").open("wb") as log:
        proc = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        end = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{http_port}/readyz", timeout=5):
                    break
            except OSError:
                assert proc.poll() is None, (tmp_path / "api.log").read_text()
                assert time.monotonic() < end, "taskflow api did not get ready"
                time.sleep(0.1)
        yield f"127.0.0.1:{grpc_port}", f"http://127.0.0.1:{http_port}/dashboard/"
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_with_a_token_the_page_asks_for_it_and_cancel_goes_through_it(
    browser: Any, artifacts: Path, api_with_token_and_actions: tuple[str, str]
) -> None:
    addr, url = api_with_token_and_actions
    with Client(addr, token=TOKEN) as c:
        task_id = c.submit("emails", "send_email", {"to": "ada@example.com"})
    tab = Page(browser, url, artifacts)
    try:
        page = tab.open(f"#/tasks/{task_id}")
        expect(page.get_by_role("heading", name="API token")).to_be_visible()
        page.get_by_label("Token").fill("wrong")
        page.get_by_role("button", name="Use token").click()
        expect(page.get_by_role("alert").last).to_have_text("invalid token")
        page.get_by_label("Token").fill(TOKEN)
        page.get_by_role("button", name="Use token").click()
        expect(page.locator("h1")).to_contain_text("send_email")
        expect(page.locator("h1 .badge")).to_have_text("queued")

        page.once("dialog", lambda dialog: dialog.accept())
        page.get_by_role("button", name="Cancel task").click()
        expect(page.locator("h1 .badge")).to_have_text("cancelled")
        expect(page.get_by_role("button", name="Cancel task")).to_have_count(0)
    finally:
        tab.errors = [e for e in tab.errors if "status of 401" not in e]
        tab.close()
    with Client(addr, token=TOKEN) as c:
        assert c.get(task_id).state == "cancelled"
