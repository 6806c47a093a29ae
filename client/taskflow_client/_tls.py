"""TLS of the client's channel: CA, client certificate and key, from arguments or the environment.

``TASKFLOW_API_TLS=1`` turns TLS on with the system's CAs; ``TASKFLOW_API_CA`` names a PEM CA
bundle (and turns TLS on); ``TASKFLOW_API_CERT`` and ``TASKFLOW_API_KEY`` name the client
certificate and key for mutual TLS. Arguments win over the environment.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import grpc

from ._errors import InvalidArgumentError

__all__ = ["CA_ENV", "CERT_ENV", "KEY_ENV", "TLS_ENV", "PemSource", "channel_credentials"]

TLS_ENV = "TASKFLOW_API_TLS"
CA_ENV = "TASKFLOW_API_CA"
CERT_ENV = "TASKFLOW_API_CERT"
KEY_ENV = "TASKFLOW_API_KEY"

#: A PEM file's path, or its contents as bytes.
PemSource = str | os.PathLike[str] | bytes


def _pem(value: PemSource | None, field: str) -> bytes | None:
    if value is None:
        return None
    if isinstance(value, bytes):
        data = value
    elif isinstance(value, str | os.PathLike):
        try:
            data = Path(value).read_bytes()
        except OSError as exc:
            raise InvalidArgumentError(f"{field}: cannot read {value}: {exc.strerror}") from None
    else:
        raise InvalidArgumentError(
            f"{field}: expected a path or PEM bytes, got {type(value).__name__}"
        )
    if b"-----BEGIN " not in data:
        raise InvalidArgumentError(f"{field}: not PEM data")
    return data


def channel_credentials(
    tls: bool | None,
    ca: PemSource | None,
    cert: PemSource | None,
    key: PemSource | None,
    env: Mapping[str, str] | None = None,
) -> grpc.ChannelCredentials | None:
    """The channel's TLS credentials, or None for a plaintext channel."""
    source = os.environ if env is None else env
    ca = ca if ca is not None else (source.get(CA_ENV) or None)
    cert = cert if cert is not None else (source.get(CERT_ENV) or None)
    key = key if key is not None else (source.get(KEY_ENV) or None)
    if tls is None:
        flag = source.get(TLS_ENV, "").strip().lower()
        tls = flag in {"1", "true", "yes", "on"} or any(v is not None for v in (ca, cert, key))
    if not isinstance(tls, bool):
        raise InvalidArgumentError(f"tls: expected True, False or None, got {tls!r}")
    if not tls:
        if any(v is not None for v in (ca, cert, key)):
            raise InvalidArgumentError("tls: ca, cert and key need tls=True")
        return None
    if (cert is None) != (key is None):
        raise InvalidArgumentError("cert: a client certificate and its key go together")
    return grpc.ssl_channel_credentials(
        root_certificates=_pem(ca, "ca"),
        private_key=_pem(key, "key"),
        certificate_chain=_pem(cert, "cert"),
    )
