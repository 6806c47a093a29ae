from __future__ import annotations

import pytest

from taskflow_operator.runner import parse_args


def test_http_endpoints_bind_to_loopback_unless_told() -> None:
    config, _ = parse_args([])
    assert config.http_host == "127.0.0.1"
    assert config.liveness_endpoint == "http://127.0.0.1:8081/healthz"

    config, _ = parse_args(["--http-host", "0.0.0.0"])
    assert config.http_host == "0.0.0.0"
    assert config.liveness_endpoint == "http://0.0.0.0:8081/healthz"

    config, _ = parse_args(["--http-host", "0.0.0.0", "--liveness", ""])
    assert config.liveness_endpoint == ""


def test_the_mirror_pool_needs_a_connection(capsys: pytest.CaptureFixture[str]) -> None:
    assert parse_args(["--mirror-db-pool", "3"])[0].mirror_pool_size == 3
    with pytest.raises(SystemExit):
        parse_args(["--mirror-db-pool", "0"])
    assert "--mirror-db-pool: must be at least 1" in capsys.readouterr().err
