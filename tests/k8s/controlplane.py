"""A throwaway Kubernetes control plane: etcd, kube-apiserver, kube-controller-manager,
kube-scheduler and kwok (fake nodes that run pods). The API server listens on loopback, or on
the address a real node reaches it at (``ControlPlane(address=...)``, see tests/k8s/realnode.py);
kwok manages only the nodes annotated as its own, so a kubelet can join beside them."""

from __future__ import annotations

import base64
import contextlib
import ctypes
import datetime
import http.client
import ipaddress
import json
import os
import random
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID
from kubernetes import client, config

REPO_ROOT = Path(__file__).resolve().parents[2]
BUILD_SCRIPT = REPO_ROOT / "hack" / "build-k8s.sh"
BUILD_HINT = "bash hack/build-k8s.sh"
REQUIRED_BINARIES = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok")
KWOK_STAGES = "kwok-stages.yaml"
SERVICE_CIDR = "10.0.0.0/24"
POD_CIDR = "10.244.0.0/16"
START_TIMEOUT = float(os.environ.get("TASKFLOW_K8S_START_TIMEOUT", "90"))
STOP_TIMEOUT = 10.0
LOG_TAIL_LINES = 40
# kubeconfig name -> (user, group) of its client certificate
CLIENT_IDENTITIES: dict[str, tuple[str, str | None]] = {
    "admin": ("admin", "system:masters"),
    "controller-manager": ("system:kube-controller-manager", None),
    "scheduler": ("system:kube-scheduler", None),
    "kwok": ("kwok", "system:masters"),
    # the API server's client certificate towards kubelets (logs, exec, port-forward)
    "kubelet-client": ("kube-apiserver-kubelet-client", "system:masters"),
}
KWOK_ANNOTATION = ("kwok.x-k8s.io/node", "fake")
KWOK_TAINT = client.V1Taint(key="kwok.x-k8s.io/node", value="fake", effect="NoSchedule")
# Admission plugins beyond the defaults: what a production cluster enforces and the operator
# must live with (an owner reference needs update on the owner's finalizers subresource).
EXTRA_ADMISSION_PLUGINS = ("OwnerReferencesPermissionEnforcement",)

T = TypeVar("T")


class ControlPlaneError(RuntimeError):
    def __init__(self, message: str, port_conflict: bool = False) -> None:
        super().__init__(message)
        self.port_conflict = port_conflict


def default_bin_dir() -> Path:
    result = subprocess.run(
        ["bash", str(BUILD_SCRIPT), "--print"], capture_output=True, text=True, check=False
    )
    if result.returncode != 0 or not result.stdout.strip():
        raise ControlPlaneError(f"{BUILD_SCRIPT} --print failed: {result.stderr.strip()}")
    return Path(result.stdout.strip())


def asset_dir() -> Path:
    assets = os.environ.get("KUBEBUILDER_ASSETS")
    return Path(assets) if assets else default_bin_dir()


def missing_assets(bin_dir: Path) -> list[str]:
    wanted = [*REQUIRED_BINARIES, KWOK_STAGES]
    return [name for name in wanted if not (bin_dir / name).is_file()]


def _ephemeral_low() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def _bindable(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


class PortAllocator:
    # Ports come from below the kernel's ephemeral range, so neither another listener asking
    # for port 0 nor an outgoing connection can take one between choosing it and binding it.
    def __init__(self, low: int = 20000) -> None:
        self._low = low
        self._high = max(_ephemeral_low(), low + 1000)
        self._taken: set[int] = set()

    def take(self) -> int:
        for _ in range(1000):
            port = random.randrange(self._low, self._high)
            if port not in self._taken and _bindable(port):
                self._taken.add(port)
                return port
        raise ControlPlaneError(f"no free loopback port in [{self._low}, {self._high})")


# --- PKI -------------------------------------------------------------------------------


@dataclass(frozen=True)
class KeyPair:
    cert_pem: bytes
    key_pem: bytes


def _key_pem(key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _name(common_name: str, organization: str | None = None) -> x509.Name:
    attributes = [x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
    if organization:
        attributes.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization))
    return x509.Name(attributes)


def _validity(builder: x509.CertificateBuilder) -> x509.CertificateBuilder:
    now = datetime.datetime.now(datetime.UTC)
    return builder.not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(
        now + datetime.timedelta(days=2)
    )


class CertificateAuthority:
    def __init__(self, common_name: str = "taskflow-test-ca") -> None:
        self._key = ec.generate_private_key(ec.SECP256R1())
        subject = _name(common_name)
        builder = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(subject)
            .public_key(self._key.public_key())
            .serial_number(x509.random_serial_number())
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
        )
        self._cert = _validity(builder).sign(self._key, hashes.SHA256())

    @property
    def cert_pem(self) -> bytes:
        return self._cert.public_bytes(serialization.Encoding.PEM)

    @property
    def key_pem(self) -> bytes:
        return _key_pem(self._key)

    def issue(
        self,
        common_name: str,
        *,
        organization: str | None = None,
        dns_names: Sequence[str] = (),
        ips: Sequence[str] = (),
        server: bool = False,
    ) -> KeyPair:
        key = ec.generate_private_key(ec.SECP256R1())
        usage = x509.oid.ExtendedKeyUsageOID
        builder = (
            x509.CertificateBuilder()
            .subject_name(_name(common_name, organization))
            .issuer_name(self._cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.ExtendedKeyUsage([usage.SERVER_AUTH] if server else [usage.CLIENT_AUTH]),
                critical=False,
            )
        )
        sans: list[x509.GeneralName] = [x509.DNSName(name) for name in dns_names]
        sans += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ips]
        if sans:
            builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
        cert = _validity(builder).sign(self._key, hashes.SHA256())
        return KeyPair(cert.public_bytes(serialization.Encoding.PEM), _key_pem(key))


def service_account_keys() -> tuple[bytes, bytes]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return public, _key_pem(key)


def apiserver_serving_pair(ca: CertificateAuthority, address: str = "127.0.0.1") -> KeyPair:
    return ca.issue(
        "kube-apiserver",
        server=True,
        dns_names=[
            "localhost",
            "kubernetes",
            "kubernetes.default",
            "kubernetes.default.svc",
            "kubernetes.default.svc.cluster.local",
        ],
        ips=sorted({"127.0.0.1", address, str(next(ipaddress.ip_network(SERVICE_CIDR).hosts()))}),
    )


# --- kubeconfig ------------------------------------------------------------------------


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def write_kubeconfig(path: Path, server: str, ca_pem: bytes, user: KeyPair, name: str) -> Path:
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": name,
                "cluster": {"server": server, "certificate-authority-data": _b64(ca_pem)},
            }
        ],
        "users": [
            {
                "name": name,
                "user": {
                    "client-certificate-data": _b64(user.cert_pem),
                    "client-key-data": _b64(user.key_pem),
                },
            }
        ],
        "contexts": [{"name": name, "context": {"cluster": name, "user": name}}],
        "current-context": name,
    }
    path.write_text(json.dumps(config, indent=2))
    path.chmod(0o600)
    return path


# --- processes -------------------------------------------------------------------------


_LIBC = ctypes.CDLL(None, use_errno=True) if sys.platform.startswith("linux") else None
_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    # Runs in the child between fork and exec: a crashed test run leaves no stray servers.
    if _LIBC is not None:
        _LIBC.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    try:
        content = path.read_text(errors="replace").splitlines()
    except FileNotFoundError:
        return "(no log)"
    return "\n".join(content[-lines:])


@dataclass
class Component:
    name: str
    args: list[str]
    log_path: Path
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        log = self.log_path.open("ab")
        try:
            self.process = subprocess.Popen(
                self.args,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=_die_with_parent,
            )
        finally:
            log.close()

    def exited(self) -> int | None:
        return None if self.process is None else self.process.poll()

    def failure(self, reason: str) -> ControlPlaneError:
        log = tail(self.log_path)
        return ControlPlaneError(
            f"{self.name} {reason}; command: {' '.join(self.args)}\n"
            f"--- last lines of {self.log_path} ---\n{log}",
            port_conflict="address already in use" in log,
        )

    def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=timeout)


def wait_until(
    component: Component,
    check: Callable[[], bool],
    what: str,
    timeout: float = START_TIMEOUT,
    interval: float = 0.2,
) -> None:
    deadline = time.monotonic() + timeout
    while True:
        code = component.exited()
        if code is not None:
            raise component.failure(f"exited with code {code} before it was {what}")
        if check():
            return
        if time.monotonic() >= deadline:
            raise component.failure(f"was not {what} within {timeout:.0f}s")
        time.sleep(interval)


def http_ok(url: str, context: ssl.SSLContext | None = None, expect: bytes | None = None) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2, context=context) as response:
            body = response.read()
            return response.status == 200 and (expect is None or expect in body)
    except (OSError, http.client.HTTPException):
        return False


def insecure_context() -> ssl.SSLContext:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


# --- the control plane -----------------------------------------------------------------


@dataclass
class ControlPlane:
    bin_dir: Path
    nodes: int = 3
    address: str = "127.0.0.1"  # where the API server listens; a real node needs a non-loopback one
    real_nodes: tuple[str, ...] = ()  # names of kubelets that will join: node credentials, kwok
    # nodes tainted so that only pods that ask for kwok land there
    root: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="taskflow-k8s-")))
    components: list[Component] = field(default_factory=list)
    ports: PortAllocator = field(default_factory=PortAllocator)
    api_port: int = 0
    _kwok: Component | None = None

    @property
    def kubeconfig(self) -> Path:
        return self.root / "admin.kubeconfig"

    @property
    def server(self) -> str:
        return f"https://{self.address}:{self.api_port}"

    def node_kubeconfig(self, name: str) -> Path:
        return self.root / f"node-{name}.kubeconfig"

    @property
    def pki_dir(self) -> Path:
        return self.root / "pki"

    def start(self) -> None:
        try:
            self._start()
        except BaseException:
            self.stop(keep_files=True)
            raise

    def stop(self, keep_files: bool = False) -> None:
        for component in reversed(self.components):
            component.stop()
        self.components.clear()
        if not keep_files and not os.environ.get("TASKFLOW_K8S_KEEP"):
            shutil.rmtree(self.root, ignore_errors=True)

    def _start(self) -> None:
        pki = self._write_pki()
        etcd_url = self._start_etcd()
        self._start_apiserver(etcd_url, pki)
        self._start_controller_manager(pki)
        self._start_scheduler(pki)
        self._start_kwok(pki)
        self._create_nodes()

    def _path(self, *parts: str) -> Path:
        path = self.root.joinpath(*parts)
        path.parent.mkdir(parents=True, exist_ok=True)
        return path

    def _write(self, name: str, data: bytes) -> Path:
        path = self._path("pki", name)
        path.write_bytes(data)
        path.chmod(0o600)
        return path

    def _write_pki(self) -> dict[str, Path]:
        ca = CertificateAuthority()
        self.api_port = self.ports.take()
        paths = {
            "ca.crt": self._write("ca.crt", ca.cert_pem),
            "ca.key": self._write("ca.key", ca.key_pem),
        }
        paths |= self._write_pair("apiserver", apiserver_serving_pair(ca, self.address))
        paths |= self._write_front_proxy()
        public, private = service_account_keys()
        paths |= {"sa.pub": self._write("sa.pub", public), "sa.key": self._write("sa.key", private)}
        for name, (user, group) in CLIENT_IDENTITIES.items():
            pair = ca.issue(user, organization=group)
            paths |= self._write_pair(name, pair)
            target = self.kubeconfig if name == "admin" else self._path(f"{name}.kubeconfig")
            kubeconfig = write_kubeconfig(target, self.server, ca.cert_pem, pair, "taskflow-test")
            paths[f"{name}.kubeconfig"] = kubeconfig
        for node in self.real_nodes:
            # The Node authorizer knows a kubelet by this identity.
            pair = ca.issue(f"system:node:{node}", organization="system:nodes")
            paths |= self._write_pair(f"node-{node}", pair)
            write_kubeconfig(
                self.node_kubeconfig(node), self.server, ca.cert_pem, pair, "taskflow-test"
            )
            serving = ca.issue(
                f"system:node:{node}", server=True, dns_names=[node], ips=[self.address]
            )
            paths |= self._write_pair(f"node-{node}-serving", serving)
        return paths

    def _kubelet_serving_ca(self, pki: dict[str, Path]) -> list[str]:
        # Real kubelets serve with certificates of this CA; kwok's fake nodes have none.
        return [f"--kubelet-certificate-authority={pki['ca.crt']}"] if self.real_nodes else []

    def _write_pair(self, name: str, pair: KeyPair) -> dict[str, Path]:
        return {
            f"{name}.crt": self._write(f"{name}.crt", pair.cert_pem),
            f"{name}.key": self._write(f"{name}.key", pair.key_pem),
        }

    def _write_front_proxy(self) -> dict[str, Path]:
        ca = CertificateAuthority("taskflow-test-front-proxy-ca")
        paths = {"front-proxy-ca.crt": self._write("front-proxy-ca.crt", ca.cert_pem)}
        return paths | self._write_pair("front-proxy-client", ca.issue("front-proxy-client"))

    def _launch(self, name: str, args: list[str]) -> Component:
        component = Component(
            name, [str(self.bin_dir / name), *args], self._path("logs", f"{name}.log")
        )
        self.components.append(component)
        component.start()
        return component

    def _start_etcd(self) -> str:
        client_port, peer_port = self.ports.take(), self.ports.take()
        client_url = f"http://127.0.0.1:{client_port}"
        peer_url = f"http://127.0.0.1:{peer_port}"
        etcd = self._launch(
            "etcd",
            [
                f"--data-dir={self._path('etcd')}",
                "--name=default",
                f"--listen-client-urls={client_url}",
                f"--advertise-client-urls={client_url}",
                f"--listen-peer-urls={peer_url}",
                f"--initial-advertise-peer-urls={peer_url}",
                f"--initial-cluster=default={peer_url}",
                "--unsafe-no-fsync=true",
                "--log-level=warn",
            ],
        )
        wait_until(etcd, lambda: http_ok(f"{client_url}/health", expect=b'"true"'), "healthy")
        return client_url

    def _start_apiserver(self, etcd_url: str, pki: dict[str, Path]) -> None:
        apiserver = self._launch(
            "kube-apiserver",
            [
                f"--etcd-servers={etcd_url}",
                f"--cert-dir={self._path('apiserver-certs')}",
                f"--bind-address={self.address}",
                f"--advertise-address={self.address}",
                f"--secure-port={self.api_port}",
                f"--tls-cert-file={pki['apiserver.crt']}",
                f"--tls-private-key-file={pki['apiserver.key']}",
                f"--client-ca-file={pki['ca.crt']}",
                f"--service-account-key-file={pki['sa.pub']}",
                f"--service-account-signing-key-file={pki['sa.key']}",
                "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
                f"--service-cluster-ip-range={SERVICE_CIDR}",
                "--authorization-mode=Node,RBAC",
                f"--enable-admission-plugins={','.join(EXTRA_ADMISSION_PLUGINS)}",
                f"--kubelet-client-certificate={pki['kubelet-client.crt']}",
                f"--kubelet-client-key={pki['kubelet-client.key']}",
                "--kubelet-preferred-address-types=InternalIP",
                *self._kubelet_serving_ca(pki),
                f"--requestheader-client-ca-file={pki['front-proxy-ca.crt']}",
                "--requestheader-allowed-names=front-proxy-client",
                "--requestheader-username-headers=X-Remote-User",
                "--requestheader-group-headers=X-Remote-Group",
                "--requestheader-extra-headers-prefix=X-Remote-Extra-",
                f"--proxy-client-cert-file={pki['front-proxy-client.crt']}",
                f"--proxy-client-key-file={pki['front-proxy-client.key']}",
                "--allow-privileged=true",
                "--endpoint-reconciler-type=none",
                "--profiling=false",
                "--v=1",
            ],
        )
        context = ssl.create_default_context(cafile=str(pki["ca.crt"]))
        context.load_cert_chain(pki["admin.crt"], pki["admin.key"])
        wait_until(apiserver, lambda: http_ok(f"{self.server}/readyz", context), "ready")

    def _secure_component(self, name: str, kubeconfig: Path, extra: list[str]) -> None:
        port = self.ports.take()
        component = self._launch(
            name,
            [
                f"--kubeconfig={kubeconfig}",
                f"--authentication-kubeconfig={kubeconfig}",
                f"--authorization-kubeconfig={kubeconfig}",
                "--bind-address=127.0.0.1",
                f"--secure-port={port}",
                f"--cert-dir={self._path(name + '-certs')}",
                "--leader-elect=false",
                "--v=1",
                *extra,
            ],
        )
        url = f"https://127.0.0.1:{port}/healthz"
        wait_until(component, lambda: http_ok(url, insecure_context()), "healthy")

    def _start_controller_manager(self, pki: dict[str, Path]) -> None:
        self._secure_component(
            "kube-controller-manager",
            pki["controller-manager.kubeconfig"],
            [
                f"--service-account-private-key-file={pki['sa.key']}",
                f"--root-ca-file={pki['ca.crt']}",
                f"--cluster-signing-cert-file={pki['ca.crt']}",
                f"--cluster-signing-key-file={pki['ca.key']}",
                "--use-service-account-credentials=true",
                f"--service-cluster-ip-range={SERVICE_CIDR}",
                f"--cluster-cidr={POD_CIDR}",
                "--controllers=*",
            ],
        )

    def _start_scheduler(self, pki: dict[str, Path]) -> None:
        self._secure_component("kube-scheduler", pki["scheduler.kubeconfig"], [])

    def _start_kwok(self, pki: dict[str, Path]) -> None:
        port = self.ports.take()
        kwok = self._launch(
            "kwok",
            [
                f"--kubeconfig={pki['kwok.kubeconfig']}",
                f"--config={self.bin_dir / KWOK_STAGES}",
                "--manage-nodes-with-annotation-selector=" + "=".join(KWOK_ANNOTATION),
                "--cidr=10.244.0.1/16",
                "--node-ip=127.0.0.1",
                "--node-lease-duration-seconds=40",
                f"--server-address=127.0.0.1:{port}",
            ],
        )
        self._kwok = kwok
        wait_until(kwok, lambda: http_ok(f"http://127.0.0.1:{port}/healthz"), "healthy")

    def _create_nodes(self) -> None:
        api_client = new_api_client(self.kubeconfig)
        api = client.CoreV1Api(api_client)
        names = [f"kwok-node-{index}" for index in range(self.nodes)]
        for name in names:
            api.create_node(fake_node(name, tainted=bool(self.real_nodes)))
        assert self._kwok is not None
        wait_until(
            self._kwok,
            lambda: set(names) <= ready_node_names(api.list_node().items),
            "making the fake nodes Ready",
        )
        close_api_client(api_client)


def new_api_client(kubeconfig: Path) -> client.ApiClient:
    api_client: client.ApiClient = config.new_client_from_config(  # type: ignore[no-untyped-call]
        config_file=str(kubeconfig)
    )
    return api_client


def close_api_client(api_client: client.ApiClient) -> None:
    api_client.close()  # type: ignore[no-untyped-call]


def fake_node(name: str, tainted: bool = False) -> client.V1Node:
    capacity = {"cpu": "32", "memory": "256Gi", "pods": "110"}
    labels = {
        "type": "kwok",
        "kubernetes.io/hostname": name,
        "kubernetes.io/os": "linux",
        "kubernetes.io/arch": "amd64",
        "kubernetes.io/role": "agent",
    }
    return client.V1Node(
        metadata=client.V1ObjectMeta(
            name=name,
            annotations={
                KWOK_ANNOTATION[0]: KWOK_ANNOTATION[1],
                "node.alpha.kubernetes.io/ttl": "0",
            },
            labels=labels,
        ),
        spec=client.V1NodeSpec(taints=[KWOK_TAINT] if tainted else None),
        status=client.V1NodeStatus(capacity=capacity, allocatable=capacity),
    )


def is_kwok_node(node: client.V1Node) -> bool:
    annotations = (node.metadata and node.metadata.annotations) or {}
    return annotations.get(KWOK_ANNOTATION[0]) == KWOK_ANNOTATION[1]


def ready_node_names(nodes: Sequence[client.V1Node]) -> set[str]:
    ready: set[str] = set()
    for node in nodes:
        conditions = (node.status and node.status.conditions) or []
        if (
            node.metadata
            and node.metadata.name
            and any(c.type == "Ready" and c.status == "True" for c in conditions)
        ):
            ready.add(node.metadata.name)
    return ready


def start_control_plane(
    bin_dir: Path,
    nodes: int = 3,
    attempts: int = 3,
    address: str = "127.0.0.1",
    real_nodes: tuple[str, ...] = (),
) -> ControlPlane:
    attempt = 1
    while True:
        plane = ControlPlane(bin_dir=bin_dir, nodes=nodes, address=address, real_nodes=real_nodes)
        try:
            plane.start()
            return plane
        except ControlPlaneError as error:
            if not error.port_conflict or attempt >= attempts:
                raise
            attempt += 1


@contextlib.contextmanager
def running_control_plane(bin_dir: Path, nodes: int = 3) -> Iterator[ControlPlane]:
    plane = start_control_plane(bin_dir, nodes)
    try:
        yield plane
    finally:
        plane.stop()


def eventually(
    check: Callable[[], T | None], timeout: float, what: str, interval: float = 0.1
) -> T:
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() >= deadline:
            raise AssertionError(f"{what}: not reached within {timeout:.0f}s")
        time.sleep(interval)
