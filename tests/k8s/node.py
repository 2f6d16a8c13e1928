"""A node for the test control plane: containerd and runc from Debian's packages, the pinned CNI plugins and a kubelet
built from the API server's module, all on this machine, with every path under the test's own folder.

The pods join the bridge of controlplane.pod_network(), whose host side is the node's address; the pods' DNS server
is the cluster DNS of addons.py on that address. containerd pulls through a proxy on a closed loopback port, so that
an image that is not loaded fails at once instead of being fetched from off the machine. The kubelet adds no
iptables chains, and the kernel settings it changes at start are put back when it stops.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import ssl
import subprocess
import tarfile
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, suppress
from dataclasses import dataclass
from ipaddress import IPv4Interface
from pathlib import Path
from typing import Any

import yaml

from cryptolake.k8s import tools
from tests.k8s import controlplane as cp

NODE_NAME = "cryptolake-node"
# The sandbox image containerd's CRI runs each pod in; a name only, since it is built here and never pulled.
PAUSE_IMAGE = "registry.k8s.io/pause:3.10"
CNI_PLUGINS = ("bridge", "host-local", "loopback", "portmap")
# Debian's packages of the container runtime, by the command each one installs.
RUNTIME_PACKAGES = {"containerd": "containerd", "runc": "runc", "ctr": "containerd", "iptables": "iptables"}
# Where containerd sends its pulls: the discard port of loopback, where nothing listens.
PULL_PROXY = f"http://{cp.LOOPBACK}:9"


class NodeError(cp.ControlPlaneError):
    """The node could not be installed, started or registered."""


def run_command(args: list[str | Path], **kwargs: Any) -> str:
    done = subprocess.run([str(a) for a in args], capture_output=True, text=True, check=False, **kwargs)
    if done.returncode != 0:
        raise NodeError(
            f"{' '.join(map(str, args))} failed ({done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
        )
    return done.stdout


def install_packages(packages: dict[str, str]) -> None:
    """apt-get install the Debian packages whose commands are missing; a no-op once installed."""
    missing = sorted({package for command, package in packages.items() if shutil.which(command) is None})
    if missing:
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        install = ["apt-get", "install", "--yes", "--no-install-recommends", *missing]
        try:
            run_command(install, env=env)
        except NodeError:
            # A fresh machine may have no package lists yet.
            run_command(["apt-get", "update"], env=env)
            run_command(install, env=env)


def cni_bin(pins: dict[str, tools.Pin], tools_dir: Path = tools.TOOLS_DIR) -> Path:
    """A folder of the pinned CNI plugins under the names CNI calls them by."""
    folder = tools_dir / "cni" / pins["cni-bridge"].version
    folder.mkdir(parents=True, exist_ok=True)
    for plugin in CNI_PLUGINS:
        link = folder / plugin
        # Relative, so that a copied or moved .cryptolake keeps working; a link left dangling by one is made again.
        target = os.path.relpath(tools.binary(pins[f"cni-{plugin}"], tools_dir), folder)
        if link.is_symlink() and str(link.readlink()) == target:
            continue
        link.unlink(missing_ok=True)
        link.symlink_to(target)
    return folder


def image_archive(path: Path, tag: str, files: dict[str, Path], entrypoint: list[str]) -> Path:
    """A one-layer image in `docker save` form, which `ctr images import` reads, of ``files`` (path in the image ->
    file here)."""
    layer = io.BytesIO()
    with tarfile.open(fileobj=layer, mode="w") as tar:
        for name, source in files.items():
            tar.add(source, arcname=name)
    diff_id = "sha256:" + hashlib.sha256(layer.getvalue()).hexdigest()
    config = {
        "architecture": "amd64",
        "os": "linux",
        "config": {"Entrypoint": entrypoint},
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
    }
    manifest = [{"Config": "config.json", "RepoTags": [tag], "Layers": ["layer.tar"]}]
    with tarfile.open(path, "w") as archive:
        for name, data in (
            ("layer.tar", layer.getvalue()),
            ("config.json", json.dumps(config).encode()),
            ("manifest.json", json.dumps(manifest).encode()),
        ):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return path


def pause_archive(pins: dict[str, tools.Pin], folder: Path) -> Path:
    """The pod sandbox image, made of Kubernetes' own pause program built static from the pinned module, cached."""
    pin = pins["kubelet"]
    archive = tools.TOOLS_DIR / "images" / f"pause-{pin.version}.tar"
    if archive.exists():
        return archive
    archive.parent.mkdir(parents=True, exist_ok=True)
    source = tools.module_dir(pin) / "build" / "pause" / "linux" / "pause.c"
    program = folder / "pause"
    run_command(["gcc", "-Os", "-static", "-DVERSION=" + pin.version, "-o", program, source])
    run_command(["strip", program])
    partial = image_archive(archive.with_suffix(".part"), PAUSE_IMAGE, {"pause": program}, ["/pause"])
    partial.replace(archive)
    return archive


# --- The pods' network ---------------------------------------------------------------------------------------------


def cni_config(folder: Path) -> Path:
    """The network every pod joins: the bridge, addresses from the node's /24, host ports through portmap."""
    config = {
        "cniVersion": "1.0.0",
        "name": "cryptolake-pods",
        "plugins": [
            {
                "type": "bridge",
                "bridge": cp.BRIDGE,
                # The pods' default route goes to the node, where kube-proxy rewrites Service addresses.
                "isDefaultGateway": True,
                "ipMasq": False,
                "hairpinMode": True,
                "ipam": {
                    "type": "host-local",
                    "ranges": [[{"subnet": str(cp.POD_SUBNET), "gateway": str(cp.NODE_ADDRESS.ip)}]],
                    "dataDir": str(folder / "ipam"),
                },
            },
            {"type": "portmap", "capabilities": {"portMappings": True}},
        ],
    }
    conf_dir = folder / "net.d"
    conf_dir.mkdir(parents=True)
    (conf_dir / "10-cryptolake.conflist").write_text(json.dumps(config, indent=1))
    return conf_dir


# --- containerd and the kubelet ------------------------------------------------------------------------------------


def containerd_config(folder: Path, cni: Path, conf_dir: Path) -> tuple[Path, Path, Path]:
    """containerd's config (version 2, Debian's 1.6) with its own root, state and socket; returns it, the socket and
    the folder where its CRI mounts the pods' network namespaces."""
    folder.mkdir(parents=True)
    socket = folder / "containerd.sock"
    cri = {
        "sandbox_image": PAUSE_IMAGE,
        # Under the state folder, not in /run/netns: that one is the machine's, and the first `ip netns add` after a
        # boot stacks a bind mount on it (see shared_mount_point).
        "netns_mounts_under_state_dir": True,
        "enable_selinux": False,
        # This machine withholds CAP_SYS_RESOURCE, so no process may lower its OOM score below containerd's: runc
        # fails at the pause container's -998 ("can't get final child's PID from pipe") unless it is clamped.
        "restrict_oom_score_adj": True,
        "cni": {"bin_dir": str(cni), "conf_dir": str(conf_dir)},
        "containerd": {
            "snapshotter": "overlayfs",
            "default_runtime_name": "runc",
            "runtimes": {
                "runc": {"runtime_type": "io.containerd.runc.v2", "options": {"SystemdCgroup": False}},
            },
        },
    }
    lines = [
        "version = 2",
        f'root = "{folder / "root"}"',
        f'state = "{folder / "state"}"',
        "[grpc]",
        f'  address = "{socket}"',
        '[plugins."io.containerd.grpc.v1.cri"]',
        *_toml_table('plugins."io.containerd.grpc.v1.cri"', cri),
    ]
    path = folder / "containerd.toml"
    path.write_text("\n".join(lines) + "\n")
    return path, socket, folder / "state" / "io.containerd.grpc.v1.cri" / "netns"


def mount_points() -> list[str]:
    return [line.split()[1] for line in Path("/proc/self/mounts").read_text().splitlines()]


def shared_mount_point(folder: Path) -> None:
    """Make ``folder`` a mount point of its own (a bind mount on itself), shared, as `ip netns add` makes /run/netns
    the first time it runs; a no-op on one. containerd's network namespaces must have it before the first pod: a
    bind mount stacked on the folder later, over the namespaces mounted in it, hides them from containerd, which can
    then never remove them, and the kubelet never ends their pods."""
    folder.mkdir(parents=True, exist_ok=True)
    if str(folder) not in mount_points():
        run_command(["mount", "--bind", folder, folder])
    run_command(["mount", "--make-shared", folder])


def _toml_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return json.dumps(value)


def _toml_table(prefix: str, table: dict[str, Any]) -> list[str]:
    """TOML lines of a nested table: the plain keys first, then each sub-table under its full name."""
    lines = [f"  {key} = {_toml_value(value)}" for key, value in table.items() if not isinstance(value, dict)]
    for key, value in table.items():
        if isinstance(value, dict):
            name = f"{prefix}.{key if key.isidentifier() else json.dumps(key)}"
            lines += [f"[{name}]", *_toml_table(name, value)]
    return lines


@dataclass
class Node:
    name: str
    address: IPv4Interface
    containerd_socket: Path
    netns_dir: Path
    processes: list[cp.Process]

    def ctr(self, *args: str | Path) -> str:
        """ctr in the namespace the kubelet's containers live in."""
        return run_command(["ctr", "--address", self.containerd_socket, "--namespace", "k8s.io", *args])

    def load(self, archive: Path) -> None:
        """Import an image archive (`docker save` form) for the kubelet's pods."""
        self.ctr("images", "import", archive)


def kubelet_config(folder: Path, socket: Path, plane: cp.ControlPlane) -> Path:
    """The kubelet's configuration: this machine's cgroup v1 and no swap accounting allowed, serving on the node's
    address, its cgroups left flat (no QoS tree), which a container's cgroup mounts may not allow. Pods resolve names
    with the cluster DNS alone: an empty host resolv.conf gives them none of this machine's servers or search
    domains."""
    host_resolv = folder / "resolv.conf"
    host_resolv.write_text("")
    config = {
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        "failCgroupV1": False,
        "failSwapOn": False,
        "cgroupDriver": "cgroupfs",
        "cgroupsPerQOS": False,
        "enforceNodeAllocatable": [],
        "containerRuntimeEndpoint": f"unix://{socket}",
        # On the node's address, where the API server reaches it for pods' logs.
        "address": str(cp.NODE_ADDRESS.ip),
        "port": cp.free_port(str(cp.NODE_ADDRESS.ip)),
        "healthzBindAddress": cp.LOOPBACK,
        "healthzPort": cp.free_port(),
        "readOnlyPort": 0,
        "authentication": {
            "anonymous": {"enabled": False},
            "webhook": {"enabled": False},
            "x509": {"clientCAFile": str(plane.ca[0])},
        },
        "authorization": {"mode": "AlwaysAllow"},
        # A busy machine's disk and memory must not evict the test's pods.
        "evictionHard": {"memory.available": "100Mi", "nodefs.available": "1%", "imagefs.available": "1%"},
        "imageGCHighThresholdPercent": 100,
        "imageGCLowThresholdPercent": 99,
        "resolvConf": str(host_resolv),
        "clusterDNS": [str(cp.NODE_ADDRESS.ip)],
        "clusterDomain": cp.CLUSTER_DOMAIN,
        # The kubelet's own iptables chains would stay in this machine's tables; nothing here needs them.
        "makeIPTablesUtilChains": False,
        "serializeImagePulls": False,
    }
    path = folder / "kubelet.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def drain(api: cp.Api, node: Node, timeout: float) -> None:
    """Delete the node's pods and give the kubelet a while to stop their sandboxes, which tears down their network
    (CNI DEL); whatever is left is force-removed after."""
    pods = api.get(f"/api/v1/pods?fieldSelector=spec.nodeName%3D{node.name}")["items"]
    for pod in pods:
        meta = pod["metadata"]
        with suppress(cp.ApiError):
            api.request("DELETE", f"/api/v1/namespaces/{meta['namespace']}/pods/{meta['name']}?gracePeriodSeconds=0")
    with suppress(cp.ControlPlaneError):
        cp.wait_for("the node's sandboxes to stop", lambda: "RUNNING" not in node.ctr("tasks", "ls"), timeout)


def remove_containers(socket: Path) -> None:
    """Kill and delete every container's task, so that no shim outlives containerd."""
    ctr = ["ctr", "--address", str(socket), "--namespace", "k8s.io", "tasks"]
    listed = subprocess.run([*ctr, "ls", "--quiet"], capture_output=True, text=True, check=False).stdout.split()
    for task in listed:
        subprocess.run([*ctr, "delete", "--force", task], capture_output=True, check=False)


def unmount_under(folder: Path) -> None:
    """Unmount what the kubelet and containerd mounted under ``folder`` (volumes, rootfs), deepest first."""
    for point in sorted((p for p in mount_points() if p.startswith(f"{folder}/")), key=len, reverse=True):
        subprocess.run(["umount", "--lazy", point], capture_output=True, check=False)


def ready(api: cp.Api, name: str) -> bool:
    node = api.get(f"/api/v1/nodes/{name}")
    conditions = {c["type"]: c["status"] for c in node.get("status", {}).get("conditions", [])}
    return conditions.get("Ready") == "True"


@contextmanager
def component(
    plane: cp.ControlPlane, name: str, binary: Path, flags: dict[str, object], timeout: float
) -> Iterator[cp.Process]:
    """A kube-* component with the admin's kubeconfig, serving on loopback, healthy before this yields."""
    port = cp.free_port()
    common = {"kubeconfig": plane.kubeconfig, "bind-address": cp.LOOPBACK, "secure-port": port, "leader-elect": "false"}
    args = [f"--{k}={v}" for k, v in {**common, **flags}.items()]
    process = cp.spawn(name, [binary, *args], plane.processes[0].log.parent)
    try:
        cp.wait_for(process.name, lambda: process.alive() and _secure_healthy(port), timeout)
        yield process
    finally:
        process.stop()


def controller_manager(plane: cp.ControlPlane, binary: Path, timeout: float) -> AbstractContextManager[cp.Process]:
    """kube-controller-manager: it gives namespaces their default service account, publishes the cluster CA
    (kube-root-ca.crt) that every pod's token volume mounts, and runs the workloads' controllers (Deployments, Jobs,
    StatefulSets, EndpointSlices, volume binding)."""
    flags = {
        "root-ca-file": plane.ca[0],
        "service-account-private-key-file": plane.kubeconfig.parent / "pki" / "service-accounts.key",
        "use-service-account-credentials": "false",
    }
    return component(plane, "kube-controller-manager", binary, flags, timeout)


def scheduler(plane: cp.ControlPlane, binary: Path, timeout: float) -> AbstractContextManager[cp.Process]:
    """kube-scheduler, which binds every pod that names no node to this one."""
    return component(plane, "kube-scheduler", binary, {}, timeout)


def _secure_healthy(port: int) -> bool:
    """The component's /healthz over its self-signed HTTPS, which is open to anyone without credentials."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    url = f"https://{cp.LOOPBACK}:{port}/healthz"
    with urllib.request.urlopen(url, context=context, timeout=5) as response:
        return bool(response.status == 200)


# The kernel settings a kubelet sets at start (container_manager_linux.go's setupKernelTunables), which the machine's
# own values must get back afterwards.
KUBELET_SYSCTLS = (
    "vm/overcommit_memory",
    "vm/panic_on_oom",
    "kernel/panic",
    "kernel/panic_on_oops",
    "kernel/keys/root_maxkeys",
    "kernel/keys/root_maxbytes",
)


@contextmanager
def kernel_settings_restored(names: tuple[str, ...] = KUBELET_SYSCTLS) -> Iterator[None]:
    """Put the named /proc/sys settings back to their values at entry."""
    files = [Path("/proc/sys") / name for name in names]
    saved = {path: path.read_text() for path in files}
    try:
        yield
    finally:
        for path, value in saved.items():
            if path.read_text() != value:
                path.write_text(value)


@contextmanager
def running(
    plane: cp.ControlPlane,
    binary: Callable[[str], Path],
    pins: dict[str, tools.Pin],
    folder: Path,
    timeout: float,
) -> Iterator[Node]:
    """containerd and a kubelet registered as a Ready node of ``plane``, torn down on exit; call inside
    ``controlplane.pod_network()``."""
    install_packages(RUNTIME_PACKAGES)
    cni = cni_bin(pins)
    pause = pause_archive(pins, folder)
    logs = plane.processes[0].log.parent
    processes: list[cp.Process] = []
    pulls = {name: PULL_PROXY for name in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy")}
    with kernel_settings_restored():
        try:
            conf_dir = cni_config(folder / "cni")
            config, socket, netns_dir = containerd_config(folder / "containerd", cni, conf_dir)
            shared_mount_point(netns_dir)
            env = {**os.environ, **pulls, "NO_PROXY": "", "no_proxy": ""}
            containerd = cp.spawn("containerd", ["containerd", "--config", config], logs, env)
            processes.append(containerd)
            cp.wait_for("containerd", lambda: containerd.alive() and socket.exists(), timeout)
            node = Node(NODE_NAME, cp.NODE_ADDRESS, socket, netns_dir, processes)
            cp.wait_for("containerd's CRI", lambda: bool(node.ctr("version")), timeout)
            node.load(pause)
            credentials = cp.make_cert(
                plane.ca, plane.kubeconfig.parent / "pki", "kubelet",
                f"/O=system:masters/CN=system:node:{NODE_NAME}", client=True,
            )  # fmt: skip
            kubeconfig = cp.write_kubeconfig(
                folder / "kubelet.kubeconfig",
                plane.api.server,
                plane.ca[0],
                {"client-certificate": str(credentials[0]), "client-key": str(credentials[1])},
            )
            kubelet_flags = {
                "config": kubelet_config(folder, socket, plane),
                "kubeconfig": kubeconfig,
                "root-dir": folder / "kubelet",
                "cert-dir": folder / "kubelet-pki",
                "hostname-override": NODE_NAME,
                "node-ip": cp.NODE_ADDRESS.ip,
            }
            kubelet = cp.spawn("kubelet", [binary("kubelet"), *[f"--{k}={v}" for k, v in kubelet_flags.items()]], logs)
            processes.append(kubelet)
            cp.wait_for("the node Ready", lambda: kubelet.alive() and ready(plane.api, NODE_NAME), timeout)
            yield node
        finally:
            if len(processes) > 1:
                drain(plane.api, node, timeout=60)
            # The kubelet first, so that it restarts none of the containers that go next.
            for process in reversed(processes[1:]):
                process.stop()
            if processes:
                remove_containers(socket)
                processes[0].stop()
            unmount_under(folder)
