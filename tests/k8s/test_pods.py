"""Real pods on the test control plane (issue 10, tier 2): a kubelet from the API server's module, containerd and
runc from Debian's packages, the pinned CNI plugins, and the node they make registered Ready.

The control plane is tier 1's (tests/k8s/test_control_plane.py's fixtures), with its blackhole routes in place
before anything starts.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from cryptolake.k8s import controlplane, tools
from cryptolake.k8s.controlplane import ControlPlane
from tests.k8s import node as nodes
from tests.k8s.conftest import INSTALL_TIMEOUT, needs_root

pytestmark = needs_root

NODE_VERSION_PINS = ("kubelet", "kube-controller-manager", "kube-scheduler")


@pytest.fixture(scope="session")
def node(
    plane: ControlPlane,
    tool: Callable[[str], Path],
    pins: dict[str, tools.Pin],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[nodes.Node]:
    with nodes.running(plane, tool, pins, tmp_path_factory.mktemp("node"), INSTALL_TIMEOUT) as running:
        yield running


def test_pods_bridge_holds_one_subnet_of_the_dropped_pod_range(network: None) -> None:
    """The bridge's /24 is the only part of the pod range routed, and only to the bridge."""
    assert nodes.POD_SUBNET.subnet_of(controlplane.POD_CIDR)
    assert not {controlplane.POD_CIDR[1], controlplane.POD_CIDR[-2]} & set(nodes.POD_SUBNET)
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


def test_pod_routes_stay_on_the_bridge(node: nodes.Node) -> None:
    """The pod subnet's route goes to the bridge, a device of this machine, never through a gateway."""
    routes = json.loads(
        subprocess.run(["ip", "-j", "route", "show", str(nodes.POD_SUBNET)], capture_output=True, check=True).stdout
    )
    assert [(r["dev"], r.get("gateway")) for r in routes] == [(nodes.BRIDGE, None)]
