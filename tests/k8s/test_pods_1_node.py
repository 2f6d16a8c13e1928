"""Tier 2, step 1 (issue 10): a node for the test control plane. A kubelet from the API server's module, containerd
and runc from Debian's packages and the pinned CNI plugins, registered Ready; the pods' bridge holds one subnet of the
dropped pod range, and the node leaves this machine's iptables alone. The pods' network namespaces outlive a bind
mount stacked on their folder, as `ip netns add` stacks one on /run/netns the first time it runs after a boot.

Tier 2 runs the releases' pods for real, step by step, each step's tests kept whatever the next does: this module,
then test_pods_2_images.py, test_pods_3_run.py, test_pods_4_services.py, test_pods_5_minio.py and
test_pods_6_pipeline.py, numbered so that pytest runs them in that order. Their session fixtures are conftest's; what
still differs from a kind cluster is in docs/testing.md.
"""

from __future__ import annotations

import json
import socket
import subprocess
from pathlib import Path

from cryptolake.k8s import tools
from tests.k8s import controlplane, workloads
from tests.k8s import node as nodes
from tests.k8s.conftest import needs_root
from tests.k8s.controlplane import ControlPlane

pytestmark = needs_root

NODE_VERSION_PINS = ("kubelet", "kube-controller-manager")


def test_pods_bridge_holds_one_subnet_of_the_dropped_pod_range(network: None) -> None:
    """The bridge's /24 is the only part of the pod range routed, and only to the bridge."""
    assert controlplane.POD_SUBNET.subnet_of(controlplane.POD_CIDR)
    assert not {controlplane.POD_CIDR[1], controlplane.POD_CIDR[-2]} & set(controlplane.POD_SUBNET)
    for network_range in controlplane.CLUSTER_CIDRS:
        assert controlplane.dropped(network_range), network_range


def test_node_binaries_are_built_from_the_api_servers_module(pins: dict[str, tools.Pin]) -> None:
    for name in NODE_VERSION_PINS:
        assert pins[name].ref == pins["kube-apiserver"].ref, name


def test_node_registers_ready_at_the_api_servers_version(node: nodes.Node, plane: ControlPlane) -> None:
    registered = plane.api.get(f"/api/v1/nodes/{node.name}")
    info = registered["status"]["nodeInfo"]
    assert info["kubeletVersion"] == plane.api.get("/version")["gitVersion"]
    assert info["containerRuntimeVersion"].startswith("containerd://")
    assert {"type": "InternalIP", "address": str(node.address.ip)} in registered["status"]["addresses"]
    assert nodes.ready(plane.api, node.name)


def test_node_leaves_this_machines_iptables_alone(node: nodes.Node) -> None:
    """No kubelet chain in any table: the node's only change to the host's network is its bridge."""
    for command in ("iptables-save", "ip6tables-save"):
        assert "KUBE-" not in subprocess.run([command], capture_output=True, text=True, check=True).stdout, command


def test_pod_routes_stay_on_the_bridge(node: nodes.Node) -> None:
    """The pod subnet's route goes to the bridge, a device of this machine, never through a gateway."""
    routes = json.loads(
        subprocess.run(
            ["ip", "-j", "route", "show", str(controlplane.POD_SUBNET)], capture_output=True, check=True
        ).stdout
    )
    assert [(r["dev"], r.get("gateway")) for r in routes] == [(controlplane.BRIDGE, None)]


def nsfs_mounts(folder: Path) -> list[str]:
    """Network namespaces mounted in ``folder``, as /proc/self/mountinfo lists them (mount point, filesystem type)."""
    mounts = [line.split(" - ") for line in Path("/proc/self/mountinfo").read_text().splitlines()]
    points = [(head.split()[4], tail.split()[0]) for head, tail in mounts]
    return [point for point, kind in points if kind == "nsfs" and point.startswith(f"{folder}/")]


def bind_as_ip_netns_add(folder: Path) -> None:
    """What `ip netns add` does to its folder (iproute2's netns_add): make it shared, recursively, and when that
    fails for want of a mount point, bind it on itself, recursively, first."""
    shared = ["mount", "--make-rshared", str(folder)]
    if subprocess.run(shared, capture_output=True, check=False).returncode != 0:
        subprocess.run(["mount", "--rbind", str(folder), str(folder)], capture_output=True, check=True)
        subprocess.run(shared, capture_output=True, check=True)


def test_a_pod_ends_though_its_network_namespaces_folder_is_bound_on_itself_while_it_runs(
    plane: ControlPlane,
    node: nodes.Node,
    smoke_namespace: str,
    loaded: set[str],
    standins: dict[str, str],
    listener: socket.socket,
) -> None:
    """The tracker's hang: a pod whose network namespace was mounted before `ip netns add` first made its folder a
    mount point never ended (the kubelet could not remove the namespace, "device or resource busy"). Here a pod holds
    on until `ip netns add`'s mounts are done to the node's folder (bound on itself unless it is a mount point
    already, as the node makes it before its first pod), then exits, and must end Succeeded."""
    host, port = listener.getsockname()
    script = f"import socket; socket.create_connection(({host!r}, {port})).recv(1)"
    pods = workloads.start_pod(
        plane.api, node, smoke_namespace, "held", workloads.python_pod(standins["python"], script)
    )
    try:
        connection, _ = listener.accept()
        with connection:
            assert nsfs_mounts(node.netns_dir), f"no network namespace of the pod in {node.netns_dir}"
            bind_as_ip_netns_add(node.netns_dir)
            connection.sendall(b"!")
        status = workloads.finished(pods, "held")
        assert (status["phase"], workloads.terminated(status)["exitCode"]) == ("Succeeded", 0), status
    finally:
        plane.api.request("DELETE", workloads.namespaced("v1/pods", "held", smoke_namespace) + "?gracePeriodSeconds=0")
