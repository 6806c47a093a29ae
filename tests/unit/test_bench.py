"""The benchmark suite's pieces that need no servers."""

from __future__ import annotations

import pytest
from redis.crc import key_slot

from taskflow.bench.scenarios import spread_names
from taskflow.bench.stats import percentile, summary_ms
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
