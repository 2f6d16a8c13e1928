"""What a kind cluster runs beside its kubelet, for the test node: kube-proxy, which makes Services route, and CoreDNS,
which resolves their names. Both are processes of this machine with the admin's kubeconfig, as the scheduler and the
controller manager of node.py are.

kube-proxy runs in nftables mode: its rules live in tables of its own (`ip kube-proxy`, `ip6 kube-proxy`), none in
this machine's iptables, and `kube-proxy --cleanup` deletes them. It masquerades every Service connection, so that a
pod's answer to another pod on the same bridge goes back through the node, where the rewrite is undone. It leaves the
kernel's conntrack limits and its own OOM score as they are. CoreDNS answers on the node's address for the cluster
domain alone: no query is forwarded off the machine.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import yaml

from cryptolake.k8s import tools
from tests.k8s import controlplane as cp
from tests.k8s import node as nodes

COREDNS_SOURCE = Path(__file__).parent / "coredns"


def proxy_tables() -> list[str]:
    """kube-proxy's nftables tables present in the kernel."""
    listed = subprocess.run(["nft", "list", "tables"], capture_output=True, text=True, check=True).stdout
    return [table for table in cp.PROXY_TABLES if f"table {table}\n" in listed + "\n"]


def proxy_config(plane: cp.ControlPlane, folder: Path, health: int) -> Path:
    config = {
        "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
        "kind": "KubeProxyConfiguration",
        "mode": "nftables",
        "clientConnection": {"kubeconfig": str(plane.kubeconfig)},
        "hostnameOverride": nodes.NODE_NAME,
        "bindAddress": str(cp.NODE_ADDRESS.ip),
        "healthzBindAddress": f"{cp.LOOPBACK}:{health}",
        "metricsBindAddress": f"{cp.LOOPBACK}:{cp.free_port()}",
        "clusterCIDR": str(cp.POD_CIDR),
        # NodePorts answer on the bridge's address only, never on this machine's other interfaces.
        "nodePortAddresses": [str(cp.POD_SUBNET)],
        "nftables": {"masqueradeAll": True},
        # This machine withholds CAP_SYS_RESOURCE (no lower OOM score), and its conntrack limits stay its own.
        "oomScoreAdj": 0,
        "conntrack": {"maxPerCore": 0, "min": 0},
    }
    path = folder / "kube-proxy.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


@contextmanager
def service_proxy(plane: cp.ControlPlane, binary: Path, folder: Path, timeout: float) -> Iterator[cp.Process]:
    """kube-proxy, healthy (its rules synced) before this yields; its tables are deleted on exit."""
    folder.mkdir(parents=True, exist_ok=True)
    health = cp.free_port()
    config = proxy_config(plane, folder, health)
    process = cp.spawn("kube-proxy", [binary, f"--config={config}"], plane.processes[0].log.parent)
    try:
        cp.wait_healthy(process, f"http://{cp.LOOPBACK}:{health}/healthz", timeout)
        yield process
    finally:
        process.stop()
        nodes.run_command([binary, "--cleanup", f"--config={config}"])
        if proxy_tables():
            raise nodes.NodeError(f"kube-proxy --cleanup left {proxy_tables()} in the kernel")


def coredns_binary() -> Path:
    """CoreDNS with the plugins the Corefile below uses, from tests/k8s/coredns, built once per version of it."""
    return tools.build_local("coredns", COREDNS_SOURCE)


@contextmanager
def cluster_dns(plane: cp.ControlPlane, folder: Path, timeout: float) -> Iterator[cp.Process]:
    """CoreDNS on the node's address, port 53, for the cluster domain; ready (the API read) before this yields."""
    folder.mkdir(parents=True, exist_ok=True)
    ready = cp.free_port()
    corefile = folder / "Corefile"
    corefile.write_text(
        f""".:53 {{
    bind {cp.NODE_ADDRESS.ip}
    errors
    ready {cp.LOOPBACK}:{ready}
    kubernetes {cp.CLUSTER_DOMAIN} {{
        kubeconfig {plane.kubeconfig}
    }}
}}
"""
    )
    process = cp.spawn("coredns", [coredns_binary(), "-conf", corefile], plane.processes[0].log.parent)
    try:
        cp.wait_healthy(process, f"http://{cp.LOOPBACK}:{ready}/ready", timeout)
        yield process
    finally:
        process.stop()
