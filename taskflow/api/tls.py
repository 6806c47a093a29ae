"""TLS and mutual TLS of the gRPC API, with certificates re-read when their files change.

The server certificate, its key and (for mutual TLS) the CA of client certificates are PEM
files. gRPC asks for the configuration at every new handshake; the files are read again when
their modification time, size or inode changed (cert-manager and Kubernetes Secret volumes
replace them atomically), so a renewed certificate is served without a restart. A pair that
cannot be read or does not parse keeps the previous one in force, and is logged.
"""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass
from pathlib import Path

import grpc

log = logging.getLogger("taskflow.api.tls")

__all__ = ["TlsConfig", "TlsError", "server_credentials"]


class TlsError(ValueError):
    """The TLS settings cannot be used; the message names the setting."""


@dataclass(frozen=True)
class TlsConfig:
    """Paths of the PEM files. ``client_ca`` set: clients must present a certificate."""

    cert: Path
    key: Path
    client_ca: Path | None = None

    @classmethod
    def from_paths(
        cls, cert: str | None, key: str | None, client_ca: str | None
    ) -> TlsConfig | None:
        """None when TLS is off (no cert and no key); ``TlsError`` for half a configuration."""
        if not cert and not key:
            if client_ca:
                raise TlsError("--tls-client-ca needs --tls-cert and --tls-key")
            return None
        if not cert or not key:
            raise TlsError("--tls-cert and --tls-key go together")
        config = cls(Path(cert), Path(key), Path(client_ca) if client_ca else None)
        config.read()
        return config

    def files(self) -> list[Path]:
        return [self.cert, self.key, *([self.client_ca] if self.client_ca else [])]

    def stamp(self) -> tuple[tuple[int, int, int], ...]:
        stamps = []
        for path in self.files():
            st = os.stat(path)
            stamps.append((st.st_mtime_ns, st.st_size, st.st_ino))
        return tuple(stamps)

    def read(self) -> tuple[bytes, bytes, bytes | None]:
        """The PEM bytes (cert, key, client CA); ``TlsError`` naming the file that is wrong."""
        out: list[bytes] = []
        for what, path in (("certificate", self.cert), ("key", self.key)):
            out.append(_pem(path, what))
        ca = _pem(self.client_ca, "client CA") if self.client_ca else None
        _check_pair(out[0], out[1], self)
        return out[0], out[1], ca


def _pem(path: Path, what: str) -> bytes:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise TlsError(f"TLS {what} {path}: {exc.strerror or exc}") from None
    if b"-----BEGIN " not in data:
        raise TlsError(f"TLS {what} {path}: not a PEM file")
    return data


def _check_pair(cert: bytes, key: bytes, config: TlsConfig) -> None:
    """Refuse a key that does not belong to the certificate (gRPC would fail every
    handshake instead, with nothing in the log)."""
    try:
        from cryptography import x509
        from cryptography.hazmat.primitives import serialization
    except ImportError:  # pragma: no cover - cryptography comes with the server extras
        return
    try:
        public = x509.load_pem_x509_certificate(cert).public_key()
        private = serialization.load_pem_private_key(key, password=None)
    except (ValueError, TypeError) as exc:
        raise TlsError(f"TLS certificate {config.cert} or key {config.key}: {exc}") from None
    fmt = serialization.PublicFormat.SubjectPublicKeyInfo
    enc = serialization.Encoding.DER
    if public.public_bytes(enc, fmt) != private.public_key().public_bytes(enc, fmt):
        raise TlsError(f"TLS key {config.key} does not belong to certificate {config.cert}")


class _Reloader:
    """gRPC's certificate-configuration fetcher: a new configuration when the files changed."""

    def __init__(self, config: TlsConfig) -> None:
        self.config = config
        self._lock = threading.Lock()
        self._stamp = config.stamp()
        self.initial = self._configuration(config.read())

    @staticmethod
    def _configuration(pem: tuple[bytes, bytes, bytes | None]) -> object:
        cert, key, ca = pem
        return grpc.ssl_server_certificate_configuration([(key, cert)], root_certificates=ca)

    def __call__(self) -> object | None:
        with self._lock:
            try:
                stamp = self.config.stamp()
                if stamp == self._stamp:
                    return None
                pem = self.config.read()
            except (OSError, TlsError) as exc:
                log.error("TLS files not reloaded, the previous ones stay in force: %s", exc)
                return None
            self._stamp = stamp
            log.info("TLS certificate reloaded from %s", self.config.cert)
            return self._configuration(pem)


def server_credentials(config: TlsConfig) -> grpc.ServerCredentials:
    """Credentials that serve ``config`` and follow changes to its files."""
    reloader = _Reloader(config)
    return grpc.dynamic_ssl_server_credentials(
        reloader.initial,  # type: ignore[arg-type]
        reloader,  # type: ignore[arg-type]
        require_client_authentication=config.client_ca is not None,
    )
