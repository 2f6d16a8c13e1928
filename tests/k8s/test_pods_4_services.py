"""Tier 2, step 4: what a kind cluster runs beside the kubelet: the scheduler, kube-proxy's Services and the cluster
DNS; and nothing a pod sends leaves the bridge for another interface (see test_pods_1_node.py for the steps)."""

from __future__ import annotations

import ipaddress
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.k8s import addons, controlplane, workloads
from tests.k8s import node as nodes
from tests.k8s.conftest import needs_root
from tests.k8s.controlplane import ControlPlane

pytestmark = needs_root


def test_kube_proxy_keeps_its_rules_in_nftables_tables_of_its_own(cluster_services: None) -> None:
    """Services route through kube-proxy's own tables, which its cleanup deletes; this machine's iptables stay as
    they were."""
    assert addons.proxy_tables()
    for command in ("iptables-save", "ip6tables-save"):
        assert "KUBE-" not in subprocess.run([command], capture_output=True, text=True, check=True).stdout, command


def retrying(step: str, tries: int = 120) -> str:
    """A pod's Python that runs ``step`` (an expression) until it succeeds, then writes its value as the pod's
    termination message: Services and names start to answer once kube-proxy and CoreDNS have seen them."""
    return (
        "import json, ssl, time, urllib.request\n"
        f"for _ in range({tries}):\n"
        f"    try:\n        value = {step}\n        break\n"
        "    except OSError as exc:\n        error = exc\n        time.sleep(1)\n"
        "else:\n    raise SystemExit(f'gave up: {error}')\n"
        "open('/dev/termination-log', 'w').write(str(value))\n"
    )


def test_an_image_that_is_not_loaded_is_never_fetched_from_off_the_machine(
    plane: ControlPlane, node: nodes.Node, cluster_services: None, smoke_namespace: str
) -> None:
    """The scheduler binds the pod to the node, and the pull that follows goes to the closed loopback proxy."""
    name = "never-loaded"
    spec = workloads.python_pod("cryptolake-test/never-loaded:1", "")
    spec["containers"][0]["imagePullPolicy"] = "Always"
    pods = workloads.start_pod(plane.api, node, smoke_namespace, name, spec, scheduled=True)
    path = workloads.namespaced("v1/pods", name, smoke_namespace)

    def waiting() -> dict[str, Any]:
        statuses = plane.api.get(path)["status"].get("containerStatuses", [])
        return dict(statuses[0]["state"].get("waiting", {})) if statuses else {}

    try:
        workloads.wait_on_pods("the pull to fail", lambda: "127.0.0.1:9" in waiting().get("message", ""), pods)
        assert plane.api.get(path)["spec"]["nodeName"] == node.name
        assert waiting()["reason"] in ("ErrImagePull", "ImagePullBackOff")
    finally:
        plane.api.request("DELETE", f"{path}?gracePeriodSeconds=0")


def test_a_pod_reaches_another_through_a_service_by_its_short_name(
    plane: ControlPlane,
    node: nodes.Node,
    cluster_services: None,
    smoke_namespace: str,
    loaded: set[str],
    standins: dict[str, str],
) -> None:
    """A server pod behind a Service, a client pod calling it `http://echo/...` as the charts call `minio:9000`:
    CoreDNS answers with the Service's address, and kube-proxy sends the connection to the server pod."""
    name = "echo"
    serve = "import runpy, sys; sys.argv = ['', '8080', '--directory', '/etc']; "
    serve += "runpy.run_module('http.server', run_name='__main__')"
    server = workloads.python_pod(standins["python"], serve)
    server_path = workloads.namespaced("v1/pods", name, smoke_namespace)
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": smoke_namespace, "labels": {"app": name}},
        "spec": server,
    }
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": smoke_namespace},
        "spec": {"selector": {"app": name}, "ports": [{"port": 80, "targetPort": 8080}]},
    }
    plane.api.apply(server_path, pod)
    plane.api.apply(workloads.namespaced("v1/services", name, smoke_namespace), service)
    try:
        fetch = "urllib.request.urlopen('http://echo/hostname', timeout=5).read().decode().strip()"
        client = workloads.python_pod(standins["python"], retrying(fetch))
        status = workloads.run_pod(plane.api, node, smoke_namespace, "echo-client", client, scheduled=True)
        terminated = workloads.terminated(status)
        assert (status["phase"], terminated["message"]) == ("Succeeded", name), terminated
    finally:
        plane.api.request("DELETE", f"{server_path}?gracePeriodSeconds=0")


def test_a_pod_reaches_the_api_server_through_the_kubernetes_service(
    plane: ControlPlane,
    node: nodes.Node,
    cluster_services: None,
    smoke_namespace: str,
    loaded: set[str],
    standins: dict[str, str],
) -> None:
    """As a Spark driver does to ask for its executors: https://kubernetes.default.svc with the pod's own token and
    the cluster CA it mounts."""
    account = "/var/run/secrets/kubernetes.io/serviceaccount"
    request = (
        f"urllib.request.Request('https://kubernetes.default.svc/version', "
        f"headers={{'Authorization': 'Bearer ' + open('{account}/token').read()}})"
    )
    context = f"ssl.create_default_context(cafile='{account}/ca.crt')"
    version = f"json.load(urllib.request.urlopen({request}, context={context}, timeout=5))['gitVersion']"
    client = workloads.python_pod(standins["python"], retrying(version))
    status = workloads.run_pod(plane.api, node, smoke_namespace, "api-client", client, scheduled=True)
    assert status["phase"] == "Succeeded", workloads.terminated(status)
    assert workloads.terminated(status)["message"] == plane.api.get("/version")["gitVersion"]


OUTSIDE = "cl-outside"
OUTSIDE_LINK = ipaddress.IPv4Interface("198.51.100.1/30")  # TEST-NET-2: documentation only, never anyone's network
OUTSIDE_HOST = ipaddress.IPv4Interface("198.51.100.2/30")


@pytest.fixture
def outside_host(tmp_path: Path) -> Iterator[tuple[str, int]]:
    """A host of the test's own beyond the node: a network namespace behind a veth pair, forwarding on both sides as
    a router's would, and a TCP server in it; yields its address and port."""
    run = nodes.run_command
    run(["ip", "netns", "add", OUTSIDE])
    server = None
    try:
        run(["ip", "link", "add", f"{OUTSIDE}0", "type", "veth", "peer", "name", f"{OUTSIDE}1", "netns", OUTSIDE])
        run(["ip", "addr", "add", str(OUTSIDE_LINK), "dev", f"{OUTSIDE}0"])
        run(["ip", "link", "set", f"{OUTSIDE}0", "up"])
        Path(f"/proc/sys/net/ipv4/conf/{OUTSIDE}0/forwarding").write_text("1")
        inside = ["ip", "netns", "exec", OUTSIDE]
        run([*inside, "ip", "addr", "add", str(OUTSIDE_HOST), "dev", f"{OUTSIDE}1"])
        run([*inside, "ip", "link", "set", f"{OUTSIDE}1", "up"])
        run([*inside, "ip", "route", "add", "default", "via", str(OUTSIDE_LINK.ip)])
        port = 8080
        script = (
            f"import socket; s = socket.create_server(('{OUTSIDE_HOST.ip}', {port})); print('up', flush=True)\n"
            "while True: s.accept()[0].close()"
        )
        server = subprocess.Popen([*inside, "python3", "-c", script], stdout=subprocess.PIPE, text=True)
        assert server.stdout is not None and server.stdout.readline().strip() == "up"
        yield str(OUTSIDE_HOST.ip), port
    finally:
        if server is not None:
            server.kill()
            server.wait()
        subprocess.run(["ip", "netns", "del", OUTSIDE], capture_output=True, check=False)


def test_a_pods_packets_never_cross_from_the_bridge_to_another_interface(
    plane: ControlPlane,
    node: nodes.Node,
    cluster_services: None,
    smoke_namespace: str,
    loaded: set[str],
    standins: dict[str, str],
    outside_host: tuple[str, int],
) -> None:
    """The bridge forwards for kube-proxy, and a route leads to a host of the test's own beyond another interface; the
    guard still drops a pod's connection there, which this machine itself makes."""
    address, port = outside_host
    socket.create_connection(outside_host, timeout=5).close()
    assert controlplane.guarded()
    script = (
        "import socket\n"
        f"try:\n    socket.create_connection(('{address}', {port}), timeout=5).close()\n    result = 'connected'\n"
        "except OSError as exc:\n    result = type(exc).__name__\n"
        "open('/dev/termination-log', 'w').write(result)\n"
    )
    client = workloads.python_pod(standins["python"], script)
    status = workloads.run_pod(plane.api, node, smoke_namespace, "outside-client", client, scheduled=True)
    assert status["phase"] == "Succeeded", workloads.terminated(status)
    assert workloads.terminated(status)["message"] == "TimeoutError"
