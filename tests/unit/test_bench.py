"""The benchmark suite's pieces: what needs no servers, and the memory scenario run tiny."""

from __future__ import annotations

from pathlib import Path

import pytest
from redis.crc import key_slot

from taskflow.bench import scenarios
from taskflow.bench.report import markdown
from taskflow.bench.scenarios import growth_per_100k, spread_names
from taskflow.bench.servers import BenchServers
from taskflow.bench.stats import percentile, summary_ms
from taskflow.bench.suite import ALL_SCENARIOS, SCENARIOS, SuitePlan
from taskflow.cli import main
from taskflow.keys import QueueKeys, QueueRef


def test_percentiles_interpolate_between_samples() -> None:
    assert percentile([1.0, 2.0, 3.0, 4.0], 50) == 2.5
    assert percentile([5.0], 99) == 5.0
    s = summary_ms([0.001, 0.002, 0.003])
    assert (s["p50_ms"], s["max_ms"]) == (2.0, 3.0)


def test_three_queue_names_land_on_three_masters_of_a_default_cluster() -> None:
    names = spread_names("bench", 3)
    thirds = {
        key_slot(QueueKeys(QueueRef("default", n)).ready.encode()) * 3 // 16384 for n in names
    }
    assert thirds == {0, 1, 2}
    assert spread_names("bench", 1) == ["bench"]


def test_an_unknown_scenario_is_named(capsys: pytest.CaptureFixture[str], tmp_path: object) -> None:
    assert main(["bench", "--suite", str(tmp_path), "--scenario", "warp"]) == 2
    err = capsys.readouterr().err
    assert "--scenario" in err and "warp" in err and "drain" in err


def test_growth_is_the_slope_after_the_warm_up() -> None:
    # 2 MiB per 1,000 tasks during the warm-up, then flat, then 1 MiB per 100,000
    samples = [(0, 50.0), (1000, 52.0), (2000, 52.0), (102_000, 53.0), (202_000, 54.0)]
    assert growth_per_100k(samples, 2000) == pytest.approx(1.0)
    assert growth_per_100k(samples[:1], 0) == 0.0


def test_the_memory_scenario_runs_tiny(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(scenarios, "IDLE_SETTLE_SECONDS", 0.2)
    monkeypatch.setattr(scenarios, "MEMORY_SAMPLE_SECONDS", 0.05)
    with BenchServers(tmp_path / "suite") as servers:
        result = scenarios.memory(
            servers, count=1500, concurrency=10, backlog=500, progress=lambda *_: None
        )
    m = result.metrics
    assert 10 < m["idle_mib"] < 500 and 10 < m["end_mib"] < 500
    assert m["peak_mib"] >= m["idle_mib"] * 0.5 and m["tasks_per_s"] > 0
    assert result.params["samples"][-1][0] >= 1500
    assert "| 1x10 noop, 1,500 tasks |" in markdown([result])


def test_memory_is_only_run_when_named() -> None:
    assert "memory" in ALL_SCENARIOS and "memory" not in SCENARIOS
    assert SuitePlan().memory_tasks == 1_000_000
    assert SuitePlan.quick(("memory",)).memory_tasks == 50_000
