"""Settings: environment first, flags second; every default works under ``taskflow dev``."""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields, replace
from typing import Any

_ENV_PREFIX = "TASKFLOW_"


@dataclass(frozen=True)
class RetryDefaults:
    """Backoff between attempts: ``initial * multiplier**n`` capped at ``max``, full jitter."""

    initial_seconds: float = 1.0
    multiplier: float = 2.0
    max_seconds: float = 300.0


@dataclass(frozen=True)
class Settings:
    """Engine settings shared by the API server, workers, housekeeping and the operator.

    Each field is read from ``TASKFLOW_<FIELD NAME IN UPPER CASE>`` when set.
    """

    redis_url: str = "redis://127.0.0.1:6379/0"
    database_url: str = "postgresql://postgres@127.0.0.1:5432/taskflow"
    api_token: str = ""
    #: Scoped tokens (YAML/JSON), re-read when it changes; see ``taskflow.api.tokens``.
    api_tokens_file: str = ""
    #: PEM server certificate and key of the gRPC API (both or neither: TLS on or off).
    api_tls_cert: str = ""
    api_tls_key: str = ""
    #: PEM CA bundle: when set, clients must present a certificate it signed (mutual TLS).
    api_tls_client_ca: str = ""
    #: How long a claim stays valid without a heartbeat; workers extend it every third of it.
    lease_seconds: float = 30.0
    #: Housekeeping period: expired leases, due delayed tasks, Redis rebuilt from PostgreSQL.
    sweep_interval: float = 5.0
    #: A non-terminal task unchanged for this long and unknown to Redis is dispatched again.
    orphan_grace_seconds: float = 30.0
    #: Finished tasks older than this are deleted by housekeeping (0 keeps them forever).
    retention_seconds: float = 7 * 24 * 3600.0
    max_payload_bytes: int = 1024 * 1024
    #: Largest result (JSON text, bytes) a task may record; a larger one fails the attempt.
    max_result_bytes: int = 1024 * 1024
    #: A page of tasks (listing, dead letters) ends before it grows past this many bytes.
    max_page_bytes: int = 4 * 1024 * 1024
    default_max_retries: int = 3
    #: Lost leases (worker vanished) after which a task is failed as poison; not retries.
    max_lost_leases: int = 5
    db_pool_size: int = 10
    #: How long a request waits for a PostgreSQL connection before it is UNAVAILABLE.
    db_timeout_seconds: float = 5.0
    retry: RetryDefaults = field(default_factory=RetryDefaults)

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None, **overrides: Any) -> Settings:
        """Build settings from the environment, then apply non-None ``overrides`` (flags)."""
        source = dict(os.environ if env is None else env)
        values: dict[str, Any] = {}
        for f in fields(cls):
            if f.name == "retry":
                continue
            raw = source.get(_ENV_PREFIX + f.name.upper())
            if raw is None or raw == "":
                continue
            values[f.name] = _coerce(f.name, raw, type(getattr(cls(), f.name)))
        retry = RetryDefaults(
            **{
                name: _coerce(name, source[key], float)
                for name, key in (
                    ("initial_seconds", "TASKFLOW_RETRY_INITIAL_SECONDS"),
                    ("multiplier", "TASKFLOW_RETRY_MULTIPLIER"),
                    ("max_seconds", "TASKFLOW_RETRY_MAX_SECONDS"),
                )
                if source.get(key)
            }
        )
        settings = cls(**values, retry=retry)
        clean = {k: v for k, v in overrides.items() if v is not None}
        return replace(settings, **clean) if clean else settings


def _coerce(name: str, raw: str, kind: type) -> Any:
    try:
        if kind is bool:
            return raw.strip().lower() in {"1", "true", "yes", "on"}
        return kind(raw)
    except ValueError as exc:
        raise ValueError(
            f"{_ENV_PREFIX}{name.upper()}: expected {kind.__name__}, got {raw!r}"
        ) from exc
