"""One real node for the test suite: a kubelet with containerd, runc and the bridge CNI plugin,
registered with a ``ControlPlane`` beside its kwok nodes, running real pods from images built by
hack/build-images.sh (imported into containerd: there is no registry).

What the tier changes on the host is written down first (``HostChanges``, a JSON file under
``STATE_DIR``) and undone by ``restore_host``: at the end of a run, and by the next run when a
run was killed before it could clean up. Only one tier runs on a machine at a time (``LOCK``):
the kubelet's sysctls, its ``kubepods`` cgroups and a few fixed paths are machine-wide.

Teardown order (each step needs the one before): the node's workloads and pods are deleted while
the kubelet runs; the kubelet stops; containerd's remaining tasks are killed and containerd
stops; the caller stops the control plane; then ``restore_host``: leftover processes, mounts
under the tier's root (deepest first), new network namespaces, the bridge, sysctls, the
``kubepods`` cgroups (deepest first), directories and CNI cache files the tier created.
"""

from __future__ import annotations

import contextlib
import fcntl
import ipaddress
import json
import os
import random
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from taskflow.embedded import _pid_alive
from tests.k8s.controlplane import (
    REPO_ROOT,
    Component,
    ControlPlane,
    ControlPlaneError,
    PortAllocator,
    close_api_client,
    new_api_client,
    ready_node_names,
    wait_until,
)

IMAGES_SCRIPT = REPO_ROOT / "hack" / "build-images.sh"
TOOLS_SCRIPT = REPO_ROOT / "hack" / "install-tools.sh"
IMAGES_HINT = "bash hack/build-images.sh"
NODE_NAME = "taskflow-node"
STATE_DIR = Path(os.environ.get("TASKFLOW_REALNODE_STATE", "/var/tmp/taskflow-realnode"))
LOCK = STATE_DIR / "lock"
LOCK_TIMEOUT = 1800.0
CGROUP_ROOT = Path("/sys/fs/cgroup")
# v1 hierarchies the kubelet and runc write to (cgroupfs driver)
CGROUP_CONTROLLERS = ("cpu", "cpuacct", "cpuset", "memory", "devices", "freezer", "pids", "blkio")
KUBEPODS = "kubepods"
# The kubelet sets the first six on every start; the bridge plugin may enable forwarding.
SYSCTLS = (
    "vm.overcommit_memory",
    "vm.panic_on_oom",
    "kernel.panic",
    "kernel.panic_on_oops",
    "kernel.keys.root_maxkeys",
    "kernel.keys.root_maxbytes",
    "net.ipv4.ip_forward",
)
# Fixed paths the kubelet, containerd and libcni use whatever their configuration says.
FIXED_PATHS = (
    "/var/lib/kubelet",
    "/var/lib/kubelet/device-plugins",
    "/var/log/containers",
    "/var/lib/cni",
    "/var/lib/cni/results",
    "/run/containerd",
    "/run/containerd/s",
    "/run/netns",
    "/var/run/netns",
)
NETNS_DIR = Path("/run/netns")
CNI_RESULTS = Path("/var/lib/cni/results")
SUBNET_PREFIX = "10.245"
RUNC = "/usr/sbin/runc"
CNI_BIN_DIR = "/usr/lib/cni"
NODE_READY_TIMEOUT = 90.0
POD_DRAIN_TIMEOUT = 90.0


# --- what the host must offer ----------------------------------------------------------------


def host_unavailable_reason() -> str | None:
    """Why this machine cannot run the tier (None: it can)."""
    if os.uname().sysname != "Linux":
        return "needs Linux"
    if os.geteuid() != 0:
        return "needs root (containerd, runc, cgroups, bridge links)"
    for controller in CGROUP_CONTROLLERS:
        path = CGROUP_ROOT / controller
        if not (path / "tasks").is_file() or not os.access(path, os.W_OK):
            return f"needs writable cgroup v1 hierarchies; {path} is missing or read-only"
    if "overlay" not in Path("/proc/filesystems").read_text():
        return "needs overlay mounts (no overlay in /proc/filesystems)"
    probe = subprocess.run(
        ["unshare", "--mount", "--pid", "--net", "--uts", "--ipc", "--fork", "true"],
        capture_output=True,
        text=True,
        check=False,
    )
    if probe.returncode != 0:
        return f"needs mount/pid/net namespaces: unshare failed: {probe.stderr.strip()}"
    return None


def tools_unavailable_reason() -> str | None:
    """Which Debian packages of the tier (containerd, runc, CNI plugins...) are missing."""
    tools = subprocess.run(
        ["bash", str(TOOLS_SCRIPT), "--check"], capture_output=True, text=True, check=False
    )
    if tools.returncode != 0:
        script = TOOLS_SCRIPT.relative_to(REPO_ROOT)
        return f"{tools.stderr.strip()}; install them with: bash {script}"
    return None


@dataclass(frozen=True)
class Image:
    reference: str
    archive: Path


def built_images() -> dict[str, Image]:
    """name → image, as hack/build-images.sh names them for the current sources."""
    result = subprocess.run(
        ["bash", str(IMAGES_SCRIPT), "--print"], capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        raise ControlPlaneError(f"{IMAGES_SCRIPT} --print failed: {result.stderr.strip()}")
    images = {}
    for line in result.stdout.splitlines():
        name, reference, archive = line.split()
        images[name] = Image(reference, Path(archive))
    return images


def images_unavailable_reason(images: dict[str, Image]) -> str | None:
    missing = [name for name, image in images.items() if not image.archive.is_file()]
    if missing:
        return f"images not built for these sources: {', '.join(missing)}; run: {IMAGES_HINT}"
    return None


# --- the record of host changes ----------------------------------------------------------------


@dataclass
class HostChanges:
    """Everything the tier changes on the host, saved before each change is made."""

    owner_pid: int
    root: str
    bridge: str = ""
    cni_network: str = ""
    sysctls: dict[str, str] = field(default_factory=dict)  # name → value before the tier
    absent_paths: list[str] = field(default_factory=list)  # fixed paths that did not exist
    netns_before: list[str] = field(default_factory=list)
    cni_results_before: list[str] = field(default_factory=list)  # libcni's cache of results
    kubepods_existed: bool = False

    @property
    def path(self) -> Path:
        return STATE_DIR / f"tier-{self.owner_pid}-{Path(self.root).name}.json"

    def save(self) -> None:
        STATE_DIR.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(self), indent=2))
        tmp.replace(self.path)

    @classmethod
    def load(cls, path: Path) -> HostChanges:
        return cls(**json.loads(path.read_text()))


def read_sysctl(name: str) -> str | None:
    try:
        return Path("/proc/sys", *name.split(".")).read_text().strip()
    except OSError:
        return None


def write_sysctl(name: str, value: str) -> None:
    with contextlib.suppress(OSError):
        Path("/proc/sys", *name.split(".")).write_text(value)


@contextlib.contextmanager
def tier_lock(timeout: float = LOCK_TIMEOUT) -> Iterator[None]:
    """One real-node tier per machine; waits for another run to finish."""
    STATE_DIR.mkdir(parents=True, exist_ok=True)
    with LOCK.open("a") as handle:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise ControlPlaneError(
                        f"another real-node tier held {LOCK} for {timeout:.0f}s"
                    ) from None
                time.sleep(1.0)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def restore_stale_tiers() -> list[str]:
    """Undo what killed runs left behind (their owner process is gone). Call under the lock."""
    restored = []
    for path in sorted(STATE_DIR.glob("tier-*.json")):
        changes = HostChanges.load(path)
        if _pid_alive(changes.owner_pid) and changes.owner_pid != os.getpid():
            continue
        restore_host(changes)
        restored.append(changes.root)
    return restored


# --- host clean-up (shared by a normal teardown and the clean-up after a killed run) ---------


def _processes_mentioning(root: str) -> list[int]:
    """Processes whose command line names ``root`` or that run inside it (servers of the
    tier's data plane run in their data directories)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="ignore")
            cwd = os.readlink(entry / "cwd")
        except OSError:
            continue
        if root in cmdline or cwd == root or cwd.startswith(root + "/"):
            pids.append(int(entry.name))
    return pids


def _cgroup_dirs(hierarchy: str) -> list[Path]:
    base = CGROUP_ROOT / hierarchy / KUBEPODS
    if not base.is_dir():
        return []
    dirs = [Path(d) for d, _, _ in os.walk(base)]
    return sorted(dirs, key=lambda p: len(p.parts), reverse=True)


def _processes_in_kubepods() -> set[int]:
    pids: set[int] = set()
    for directory in _cgroup_dirs("pids") or _cgroup_dirs("memory"):
        with contextlib.suppress(OSError):
            pids |= {int(p) for p in (directory / "cgroup.procs").read_text().split()}
    return pids


def _kill(pids: set[int] | list[int]) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while any(_pid_alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.1)


def _mounts_under(prefixes: list[str]) -> list[str]:
    points = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = line.split()[4].replace("\\040", " ")
        if any(point == p or point.startswith(p.rstrip("/") + "/") for p in prefixes):
            points.append(point)
    return sorted(set(points), key=lambda p: (p.count("/"), p), reverse=True)


def _unmount_all(prefixes: list[str]) -> None:
    # A bind mount of a directory onto itself stacks: repeat until nothing is left.
    for _ in range(5):
        points = _mounts_under(prefixes)
        if not points:
            return
        for point in points:
            if subprocess.run(["umount", point], capture_output=True, check=False).returncode:
                subprocess.run(["umount", "--lazy", point], capture_output=True, check=False)


def restore_host(changes: HostChanges) -> None:
    """Undo every change ``changes`` records; safe to repeat, never raises on a missing item."""
    _kill(_processes_mentioning(changes.root))
    if not changes.kubepods_existed:  # else the pods are another kubelet's
        _kill(_processes_in_kubepods())
    new_netns = []
    if NETNS_DIR.is_dir():
        new_netns = [
            str(NETNS_DIR / name)
            for name in os.listdir(NETNS_DIR)
            if name not in changes.netns_before
        ]
    _unmount_all([changes.root, *new_netns])
    for netns in new_netns:
        with contextlib.suppress(OSError):
            os.unlink(netns)
    if changes.bridge:
        subprocess.run(["ip", "link", "delete", changes.bridge], capture_output=True, check=False)
    for name, value in changes.sysctls.items():
        if read_sysctl(name) != value:
            write_sysctl(name, value)
    if not changes.kubepods_existed:
        # every hierarchy: runc also makes them in name=systemd and the unified mount
        for hierarchy in sorted(p.name for p in CGROUP_ROOT.iterdir() if p.is_dir()):
            for directory in _cgroup_dirs(hierarchy):
                with contextlib.suppress(OSError):
                    directory.rmdir()
    if CNI_RESULTS.is_dir():
        for name in os.listdir(CNI_RESULTS):
            if name not in changes.cni_results_before:
                (CNI_RESULTS / name).unlink(missing_ok=True)
    for path in sorted(changes.absent_paths, key=len, reverse=True):
        if Path(path).is_dir() and not Path(path).is_symlink():
            shutil.rmtree(path, ignore_errors=True)
    shutil.rmtree(changes.root, ignore_errors=True)
    changes.path.unlink(missing_ok=True)


# --- the node ------------------------------------------------------------------------------------


def _free_subnet() -> ipaddress.IPv4Network:
    used = subprocess.run(
        ["ip", "-4", "-o", "addr", "show"], capture_output=True, text=True, check=True
    ).stdout
    candidates = list(range(1, 255))
    random.shuffle(candidates)
    for third in candidates:
        if f" {SUBNET_PREFIX}.{third}." not in used:
            return ipaddress.IPv4Network(f"{SUBNET_PREFIX}.{third}.0/24")
    raise ControlPlaneError(f"no free /24 in {SUBNET_PREFIX}.0.0/16 for the node's bridge")


def _run(args: list[str], what: str, timeout: float = 120.0) -> str:
    result = subprocess.run(args, capture_output=True, text=True, timeout=timeout, check=False)
    if result.returncode != 0:
        raise ControlPlaneError(
            f"{what} failed (exit {result.returncode}): {' '.join(args)}\n"
            f"{(result.stdout + result.stderr).strip()}"
        )
    return result.stdout


class RealNode:
    """A kubelet + containerd node. ``prepare`` (before the control plane: the API server
    listens on the node's bridge address), ``start(plane)``, ``drain(plane)``, ``stop``."""

    def __init__(self, bin_dir: Path, images: dict[str, Image], name: str = NODE_NAME) -> None:
        self.bin_dir = bin_dir
        self.images = images
        self.name = name
        self.root = Path(tempfile.mkdtemp(prefix="taskflow-node-"))
        self.ports = PortAllocator()
        token = os.urandom(3).hex()
        self.changes = HostChanges(
            owner_pid=os.getpid(),
            root=str(self.root),
            bridge=f"tf{token}",
            cni_network=f"taskflow-{token}",
        )
        self.subnet = _free_subnet()
        self.gateway = str(next(self.subnet.hosts()))
        self.components: list[Component] = []
        self.containerd: Component | None = None
        self.kubelet: Component | None = None

    @property
    def socket(self) -> Path:
        return self.root / "containerd" / "containerd.sock"

    @property
    def log_dir(self) -> Path:
        return self.root / "logs"

    def path(self, *parts: str) -> Path:
        target = self.root.joinpath(*parts)
        target.parent.mkdir(parents=True, exist_ok=True)
        return target

    # -- before the control plane ------------------------------------------------------------

    def prepare(self) -> None:
        """Record the host's state, then create the bridge whose address the node (and the API
        server) use: the kubelet refuses a loopback node IP."""
        changes = self.changes
        for name in SYSCTLS:
            value = read_sysctl(name)
            if value is not None:
                changes.sysctls[name] = value
        changes.absent_paths = [p for p in FIXED_PATHS if not os.path.lexists(p)]
        changes.netns_before = os.listdir(NETNS_DIR) if NETNS_DIR.is_dir() else []
        changes.cni_results_before = os.listdir(CNI_RESULTS) if CNI_RESULTS.is_dir() else []
        changes.kubepods_existed = any(
            (hierarchy / KUBEPODS).exists() for hierarchy in CGROUP_ROOT.iterdir()
        )
        changes.save()
        bridge = changes.bridge
        _run(["ip", "link", "add", bridge, "type", "bridge"], "creating the node's bridge")
        _run(
            ["ip", "addr", "add", f"{self.gateway}/{self.subnet.prefixlen}", "dev", bridge],
            "addressing the bridge",
        )
        _run(["ip", "link", "set", bridge, "up"], "bringing the bridge up")

    # -- start -------------------------------------------------------------------------------

    def start(self, plane: ControlPlane) -> None:
        self._start_containerd()
        self._import_images()
        self._start_kubelet(plane)
        self._wait_ready(plane)

    def _launch(self, name: str, args: list[str]) -> Component:
        component = Component(name, args, self.path("logs", f"{name}.log"))
        self.components.append(component)
        component.start()
        return component

    def _containerd_config(self) -> str:
        cri = '[plugins."io.containerd.grpc.v1.cri"]'
        runc = f"{cri[:-1]}.containerd.runtimes.runc]"
        return f"""version = 2
root = "{self.path("containerd", "root")}"
state = "{self.path("containerd", "state")}"
oom_score = 0
disabled_plugins = [
  "io.containerd.internal.v1.opt",
  "io.containerd.snapshotter.v1.aufs",
  "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.devmapper",
  "io.containerd.snapshotter.v1.zfs",
]

[grpc]
  address = "{self.socket}"

[ttrpc]
  address = "{self.socket}.ttrpc"

{cri}
  sandbox_image = "{self.images["pause"].reference}"
  # CAP_SYS_RESOURCE is not granted here: oom_score_adj may only go up
  restrict_oom_score_adj = true
  disable_apparmor = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  [{cri[1:-1]}.cni]
    bin_dir = "{CNI_BIN_DIR}"
    conf_dir = "{self.path("cni", "net.d")}"
    max_conf_num = 1
  [{cri[1:-1]}.containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    {runc}
      runtime_type = "io.containerd.runc.v2"
      {runc[:-1]}.options]
        BinaryName = "{RUNC}"
        Root = "{self.path("runc")}"
        SystemdCgroup = false
"""

    def _cni_config(self) -> str:
        return json.dumps(
            {
                "cniVersion": "0.4.0",
                "name": self.changes.cni_network,
                "plugins": [
                    {
                        "type": "bridge",
                        "bridge": self.changes.bridge,
                        # The bridge already has the gateway address; pods reach it on-link.
                        "isGateway": False,
                        "ipMasq": False,
                        "hairpinMode": True,
                        "ipam": {
                            "type": "host-local",
                            "ranges": [[{"subnet": str(self.subnet), "gateway": self.gateway}]],
                            "dataDir": str(self.path("cni", "ipam")),
                        },
                    }
                ],
            },
            indent=2,
        )

    def _start_containerd(self) -> None:
        config = self.path("containerd", "config.toml")
        config.write_text(self._containerd_config())
        self.path("cni", "net.d", "10-taskflow.conflist").write_text(self._cni_config())
        self.containerd = self._launch(
            "containerd", ["containerd", "--config", str(config), "--log-level", "warn"]
        )
        wait_until(
            self.containerd,
            lambda: self.socket.exists() and self._ctr("version", check=False) is not None,
            "answering on its socket",
        )

    def _ctr(self, *args: str, check: bool = True, timeout: float = 120.0) -> str | None:
        command = ["ctr", "--address", str(self.socket), "--namespace", "k8s.io", *args]
        result = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
        if result.returncode != 0:
            if check:
                raise ControlPlaneError(
                    f"{' '.join(command)} failed: {(result.stdout + result.stderr).strip()}"
                )
            return None
        return result.stdout

    def _import_images(self) -> None:
        for name in ("pause", "busybox", "api", "worker"):
            self._ctr("images", "import", str(self.images[name].archive))
        listed = self._ctr("images", "list", "--quiet") or ""
        missing = [n for n in ("pause", "api", "worker") if self.images[n].reference not in listed]
        if missing:
            raise ControlPlaneError(f"images not in containerd after import: {missing}\n{listed}")

    def _kubelet_config(self, plane: ControlPlane) -> Path:
        pki = plane.pki_dir
        config = {
            "apiVersion": "kubelet.config.k8s.io/v1beta1",
            "kind": "KubeletConfiguration",
            "failCgroupV1": False,
            "cgroupDriver": "cgroupfs",
            "containerRuntimeEndpoint": f"unix://{self.socket}",
            "imageServiceEndpoint": f"unix://{self.socket}",
            "address": self.gateway,
            "port": self.ports.take(),
            "readOnlyPort": 0,
            "healthzBindAddress": "127.0.0.1",
            "healthzPort": self.ports.take(),
            "tlsCertFile": str(pki / f"node-{self.name}-serving.crt"),
            "tlsPrivateKeyFile": str(pki / f"node-{self.name}-serving.key"),
            "authentication": {
                "anonymous": {"enabled": False},
                "webhook": {"enabled": True},
                "x509": {"clientCAFile": str(pki / "ca.crt")},
            },
            "authorization": {"mode": "Webhook"},
            "protectKernelDefaults": False,
            "failSwapOn": False,
            "resolvConf": str(self._resolv_conf()),
            "podLogsDir": str(self.path("pod-logs")),
            "volumePluginDir": str(self.path("volume-plugins")),
            "clusterDomain": "cluster.local",
            "maxPods": 40,
            "serializeImagePulls": False,
            # a shared, busy disk must not evict the tier's pods or collect its images
            "evictionHard": {
                "memory.available": "100Mi",
                "nodefs.available": "1%",
                "imagefs.available": "1%",
                "nodefs.inodesFree": "1%",
            },
            "imageGCHighThresholdPercent": 100,
            "imageGCLowThresholdPercent": 99,
            "shutdownGracePeriod": "0s",
            "nodeStatusUpdateFrequency": "5s",
        }
        path = self.path("kubelet", "config.yaml")
        path.write_text(json.dumps(config, indent=2))
        return path

    def _resolv_conf(self) -> Path:
        path = self.path("kubelet", "resolv.conf")
        # No cluster DNS here: pods address servers by IP.
        path.write_text("options ndots:1\n")
        return path

    def _start_kubelet(self, plane: ControlPlane) -> None:
        self.kubelet = self._launch(
            "kubelet",
            [
                str(self.bin_dir / "kubelet"),
                f"--config={self._kubelet_config(plane)}",
                f"--kubeconfig={plane.node_kubeconfig(self.name)}",
                f"--hostname-override={self.name}",
                f"--node-ip={self.gateway}",
                f"--root-dir={self.path('kubelet', 'root')}",
                f"--cert-dir={self.path('kubelet', 'pki')}",
                "--v=1",
            ],
        )

    def _wait_ready(self, plane: ControlPlane) -> None:
        api_client = new_api_client(plane.kubeconfig)
        core = client.CoreV1Api(api_client)
        assert self.kubelet is not None
        try:
            wait_until(
                self.kubelet,
                lambda: self.name in ready_node_names(core.list_node().items),
                "registering a Ready node",
                timeout=NODE_READY_TIMEOUT,
            )
            # Pods of a namespace wait for its service account.
            wait_until(
                self.kubelet,
                lambda: bool(
                    core.list_namespaced_service_account(
                        "default", field_selector="metadata.name=default"
                    ).items
                ),
                "seeing the default service account",
            )
        finally:
            close_api_client(api_client)

    # -- stop --------------------------------------------------------------------------------

    def drain(self, plane: ControlPlane) -> None:
        """Delete every workload and the node's pods while the kubelet runs, and wait for them
        to go: the kubelet unmounts their volumes and tears their sandboxes down."""
        if self.kubelet is None or self.kubelet.exited() is not None:
            return
        api_client = new_api_client(plane.kubeconfig)
        try:
            apps = client.AppsV1Api(api_client)
            core = client.CoreV1Api(api_client)
            for lister, deleter in (
                (apps.list_deployment_for_all_namespaces, apps.delete_namespaced_deployment),
                (apps.list_stateful_set_for_all_namespaces, apps.delete_namespaced_stateful_set),
                (apps.list_daemon_set_for_all_namespaces, apps.delete_namespaced_daemon_set),
                (apps.list_replica_set_for_all_namespaces, apps.delete_namespaced_replica_set),
            ):
                for item in lister().items:
                    with contextlib.suppress(ApiException):
                        deleter(item.metadata.name, item.metadata.namespace)
            selector = f"spec.nodeName={self.name}"
            for pod in core.list_pod_for_all_namespaces(field_selector=selector).items:
                with contextlib.suppress(ApiException):
                    core.delete_namespaced_pod(
                        pod.metadata.name, pod.metadata.namespace, grace_period_seconds=2
                    )
            deadline = time.monotonic() + POD_DRAIN_TIMEOUT
            while core.list_pod_for_all_namespaces(field_selector=selector).items:
                if time.monotonic() > deadline or self.kubelet.exited() is not None:
                    break
                time.sleep(0.5)
        finally:
            close_api_client(api_client)

    def stop(self) -> None:
        if self.kubelet is not None:
            self.kubelet.stop(timeout=20)
        if self.containerd is not None and self.containerd.exited() is None:
            tasks = self._ctr("tasks", "list", "--quiet", check=False, timeout=20) or ""
            for task in tasks.split():
                self._ctr("tasks", "kill", "--signal", "SIGKILL", task, check=False, timeout=20)
            self.containerd.stop(timeout=20)
        self.components.clear()

    def restore_host(self) -> None:
        restore_host(self.changes)

    def logs(self) -> str:
        """The end of each component's log, for a failure report."""
        return "\n".join(
            f"--- {c.log_path}\n{c.log_path.read_text(errors='replace')[-4000:]}"
            for c in self.components
            if c.log_path.is_file()
        )
