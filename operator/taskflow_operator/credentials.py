"""Which Kubernetes credentials the operator uses, and how kopf logs in with them.

Chosen once, in this order (as ``kubectl`` and kopf's own login do):

1. ``--kubeconfig PATH``;
2. ``$KUBECONFIG`` (the first of its ``:``-separated files that exists);
3. the pod's service account, when running in a pod (``KUBERNETES_SERVICE_HOST`` and the
   mounted token);
4. ``~/.kube/config``.

None of them: a clear error at start, never a retry loop.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import kopf
from kubernetes import client

from taskflow_operator.kube import load_configuration

SERVICE_ACCOUNT_TOKEN = Path("/var/run/secrets/kubernetes.io/serviceaccount/token")
NO_CREDENTIALS = (
    "no Kubernetes credentials: pass --kubeconfig PATH, set KUBECONFIG, or run in a pod "
    "with a service account"
)


class NoCredentials(RuntimeError):
    pass


@dataclass(frozen=True)
class Source:
    """A kubeconfig file, or the pod's service account (``kubeconfig is None``)."""

    kubeconfig: Path | None
    origin: str  # how it was chosen, for the start-up log line

    def describe(self) -> str:
        return "in-cluster service account" if self.kubeconfig is None else str(self.kubeconfig)


def choose(
    flag: Path | None,
    env: Mapping[str, str] | None = None,
    token_file: Path = SERVICE_ACCOUNT_TOKEN,
    home: Path | None = None,
) -> Source:
    env = os.environ if env is None else env
    if flag is not None:
        if not flag.is_file():
            raise NoCredentials(f"--kubeconfig {flag}: no such file")
        return Source(flag, "--kubeconfig")
    listed = [Path(p).expanduser() for p in env.get("KUBECONFIG", "").split(os.pathsep) if p]
    for path in listed:
        if path.is_file():
            return Source(path, "KUBECONFIG")
    if listed:
        raise NoCredentials(f"KUBECONFIG={env['KUBECONFIG']}: no such file")
    if env.get("KUBERNETES_SERVICE_HOST") and token_file.is_file():
        return Source(None, "service account")
    default = (home or Path.home()) / ".kube" / "config"
    if default.is_file():
        return Source(default, "~/.kube/config")
    raise NoCredentials(NO_CREDENTIALS)


def configuration(source: Source) -> client.Configuration:
    return load_configuration(source.kubeconfig)


def connection_info(cfg: client.Configuration) -> kopf.ConnectionInfo:
    """kopf's credentials from a loaded client configuration.

    kubernetes-client 36+ keeps a kubeconfig's or a service account's bearer token under
    ``api_key["BearerToken"]`` (older ones under ``"authorization"``); reading it through
    ``get_api_key_with_prefix`` also refreshes a rotated service-account token.
    """
    header = cfg.get_api_key_with_prefix("BearerToken") or cfg.get_api_key_with_prefix(
        "authorization"
    )
    parts = header.split(" ", 1) if header else []
    scheme, token = (parts[0], parts[1]) if len(parts) == 2 else (None, parts[0] if parts else None)
    return kopf.ConnectionInfo(
        server=cfg.host,
        ca_path=cfg.ssl_ca_cert,
        insecure=not cfg.verify_ssl,
        username=cfg.username or None,
        password=cfg.password or None,
        scheme=scheme,
        token=token or None,
        certificate_path=cfg.cert_file,
        private_key_path=cfg.key_file,
    )
