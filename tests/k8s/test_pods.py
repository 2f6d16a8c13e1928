"""The releases' pods for real on the test control plane (issue 10, tier 2), step by step, each step's tests kept
whatever the next does: a node (a kubelet from the API server's module, containerd and runc from Debian's packages,
the pinned CNI plugins) registered Ready; the stand-in images and the project's two Dockerfiles built unchanged on
them, loaded into the node; pods of them running; the scheduler, kube-proxy and CoreDNS that make Services work; the
minio release's server and setup Job; then the cryptolake release's ingestor and Spark layers, a driver killed on
the way, and gold read back and compared with the reference.

The control plane and the releases of tier 1 are conftest's, shared with test_control_plane.py, inside the blackhole
routes checked before anything starts. What still differs from a kind cluster is in the README's Kubernetes section.
"""

from __future__ import annotations

import base64
import ipaddress
import json
import re
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pyarrow.fs as pafs
import pyspark
import pytest
import yaml
from confluent_kafka import Consumer, TopicPartition

from core.jars import read_pins
from core.layers import BRONZE_TABLE, SILVER_TABLE
from core.settings import Settings
from cryptolake import lake
from cryptolake.k8s import tools
from cryptolake.local import minio as minio_server
from cryptolake.local.kafka import Kafka, ensure_topic
from cryptolake.local.paths import REPO_ROOT, LocalPaths
from cryptolake.local.procs import free_port
from cryptolake.venue.synthetic import Trade, generate
from tests import reference
from tests.e2e.helpers import assert_gold_equals, bar_key, final_bars
from tests.k8s import addons, controlplane, images, render
from tests.k8s import node as nodes
from tests.k8s.conftest import INSTALL_TIMEOUT, Cluster, needs_root
from tests.k8s.controlplane import ControlPlane
from tests.k8s.test_contract import parse_bytes

pytestmark = needs_root

NODE_VERSION_PINS = ("kubelet", "kube-controller-manager")
INGESTOR_DOCKERFILE = REPO_ROOT / "images" / "ingestor" / "Dockerfile"
# Images built here carry a tag of their own, apart from the tier-1 names the control plane's pods ask for.
IMAGE_TAG = "tier2"


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


# --- Step 2: the images, stand-ins for the official ones and the project's own built on them ----------------------

SPARK_BASE = images.default_base(REPO_ROOT / "Dockerfile", "SPARK_IMAGE")
PYTHON_BASE = images.default_base(INGESTOR_DOCKERFILE, "PYTHON_IMAGE")
PROJECT_IMAGES = {
    "spark": (REPO_ROOT / "Dockerfile", f"cryptolake-spark:{IMAGE_TAG}", {"PYTHON": "/usr/bin/python3.11"}),
    "ingestor": (INGESTOR_DOCKERFILE, f"cryptolake-ingestor:{IMAGE_TAG}", {}),
}


@pytest.fixture(scope="session")
def docker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[images.Docker]:
    with images.dockerd(tmp_path_factory.mktemp("docker"), INSTALL_TIMEOUT) as running:
        yield running


@pytest.fixture(scope="session")
def standins(docker: images.Docker) -> dict[str, str]:
    """The stand-ins, tagged with the official images' names the project's Dockerfiles build on."""
    return {
        "spark": images.build_standin(docker, "spark", SPARK_BASE, {"PYSPARK_VERSION": pyspark.__version__}),
        "python": images.build_standin(docker, "python", PYTHON_BASE, {}),
    }


@pytest.fixture(scope="session")
def project_images(docker: images.Docker, standins: dict[str, str]) -> dict[str, str]:
    return {
        name: images.build_project_image(docker, dockerfile, tag, args)
        for name, (dockerfile, tag, args) in PROJECT_IMAGES.items()
    }


def load_images(node: nodes.Node, docker: images.Docker, tags: list[str], folder: Path) -> None:
    """Import the images into the node's containerd, one `docker save` archive at a time."""
    for tag in tags:
        archive = images.save(docker, tag, folder)
        node.load(archive)
        archive.unlink()


@pytest.fixture(scope="session")
def loaded(
    node: nodes.Node,
    docker: images.Docker,
    standins: dict[str, str],
    project_images: dict[str, str],
    tmp_path_factory: pytest.TempPathFactory,
) -> set[str]:
    """The images the pods run, imported into the node's containerd; returns every image name it then lists. The
    Spark stand-in is only a base, so it stays in Docker."""
    load_images(node, docker, [standins["python"], *project_images.values()], tmp_path_factory.mktemp("image-archives"))
    listed = node.ctr("images", "ls", "--quiet").split()
    return {name.removeprefix("docker.io/library/").removeprefix("docker.io/") for name in listed}


def in_image(docker: images.Docker, image: str, *command: str) -> str:
    """Output of a command in a throwaway container of the image, as its own user, with no network and a read-only
    root."""
    # Its own name resolves (to loopback), as Spark needs of a host.
    flags = ["--rm", "--network=none", "--hostname=image-check", "--add-host=image-check:127.0.0.1"]
    flags += ["--read-only", "--tmpfs=/tmp"]
    return docker("run", *flags, "--entrypoint=", image, *command)


@pytest.mark.parametrize("name", ["spark", "python"])
def test_standins_say_what_they_stand_in_for(name: str) -> None:
    dockerfile = (images.STANDINS / name / "Dockerfile").read_text()
    assert dockerfile.startswith("# STAND-IN for the official"), name


def test_spark_standin_has_a_jre_python_3_11_and_the_pinned_pyspark(
    docker: images.Docker, standins: dict[str, str]
) -> None:
    assert standins["spark"] == SPARK_BASE
    script = "import sys, pyspark; print(sys.version_info[:2], pyspark.__version__)"
    assert in_image(docker, SPARK_BASE, "python3", "-c", script).split() == ["(3,", "11)", pyspark.__version__]
    # As the image's Spark user: spark-submit finds Spark's jars and the JRE.
    assert f"version {pyspark.__version__}" in in_image(docker, SPARK_BASE, "sh", "-c", "spark-submit --version 2>&1")


def test_project_images_build_unchanged_on_the_standins(docker: images.Docker, project_images: dict[str, str]) -> None:
    """Each image imports what it runs with its own interpreter, as its own user, on a read-only root, and holds
    none of the app's package."""
    spark, ingestor = project_images["spark"], project_images["ingestor"]
    for image, python, runs in (
        # pyspark is Spark's own (/opt/spark/python, put on the path by spark-submit): the query pod runs the jobs.
        (spark, "/opt/cryptolake/.venv/bin/python", "core.settings, jobs"),
        (ingestor, "python", "ingestion.app"),
    ):
        check = f"import importlib.util as u, sys, {runs}; print(sys.version_info[:2], u.find_spec('cryptolake'))"
        assert in_image(docker, image, python, "-c", check).split() == ["(3,", "11)", "None"], image
    # The Spark jars of spark-jars.txt sit on Spark's classpath.
    jars = in_image(docker, spark, "ls", "/opt/spark/jars").split()
    assert {jar.filename for jar in read_pins()} <= set(jars)


def test_every_image_the_pods_run_is_loaded_into_the_node(
    loaded: set[str], standins: dict[str, str], project_images: dict[str, str]
) -> None:
    assert {standins["python"], *project_images.values()} <= loaded


# --- Step 3: pods run ------------------------------------------------------------------------------------------------

SMOKE_NAMESPACE = "cryptolake-smoke"


@pytest.fixture(scope="session")
def controller_manager(plane: ControlPlane, tool: Callable[[str], Path]) -> Iterator[controlplane.Process]:
    with nodes.controller_manager(plane, tool("kube-controller-manager"), INSTALL_TIMEOUT) as running:
        yield running


@pytest.fixture
def listener(node: nodes.Node) -> Iterator[socket.socket]:
    """A TCP server of the test on the bridge's host side, the one address of this machine the pods route to."""
    with socket.create_server((str(node.address.ip), 0)) as server:
        server.settimeout(INSTALL_TIMEOUT)
        yield server


@pytest.fixture(scope="session")
def smoke_namespace(plane: ControlPlane, controller_manager: controlplane.Process) -> str:
    """A namespace of the test's own pods, once the controller manager has given it its default service account."""
    namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": SMOKE_NAMESPACE}}
    plane.api.apply(f"/api/v1/namespaces/{SMOKE_NAMESPACE}", namespace)
    controlplane.wait_for(
        "the namespace's default service account",
        lambda: bool(plane.api.get(f"/api/v1/namespaces/{SMOKE_NAMESPACE}/serviceaccounts/default")),
        INSTALL_TIMEOUT,
    )
    return SMOKE_NAMESPACE


def run_pod(
    plane: ControlPlane, node: nodes.Node | None, namespace: str, name: str, spec: dict[str, Any]
) -> dict[str, Any]:
    """Run a pod to completion, placed on ``node`` by name, or by the scheduler if None; returns its last status."""
    placed = {"nodeName": node.name} if node else {}
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace, "labels": {"app": name}},
        "spec": {**placed, "restartPolicy": "Never", **spec},
    }
    path = f"/api/v1/namespaces/{namespace}/pods/{name}"
    plane.api.apply(path, pod)

    def finished() -> bool:
        return plane.api.get(path)["status"].get("phase") in ("Succeeded", "Failed")

    controlplane.wait_for(f"pod {name} to finish", finished, INSTALL_TIMEOUT)
    status: dict[str, Any] = plane.api.get(path)["status"]
    return status


def terminated(status: dict[str, Any]) -> dict[str, Any]:
    (state,) = [c["state"]["terminated"] for c in status["containerStatuses"]]
    return dict(state)


def test_a_pod_runs_from_a_standin_image_and_reaches_the_bridges_host_side(
    plane: ControlPlane,
    node: nodes.Node,
    smoke_namespace: str,
    loaded: set[str],
    standins: dict[str, str],
    listener: socket.socket,
) -> None:
    """With its service account token mounted, it sends its own address to the test and exits with a termination
    message, both read back here."""
    host, port = listener.getsockname()
    script = (
        "import os, socket; me = socket.gethostbyname(socket.gethostname());"
        f" socket.create_connection(({host!r}, {port})).sendall(me.encode());"
        " token = os.path.getsize('/var/run/secrets/kubernetes.io/serviceaccount/token');"
        " open('/dev/termination-log', 'w').write(f'{me} token={token > 0}')"
    )
    container = {
        "name": "smoke",
        "image": standins["python"],
        "imagePullPolicy": "Never",
        "command": ["python3", "-c", script],
        "securityContext": {"runAsUser": 10001, "readOnlyRootFilesystem": True},
    }
    status = run_pod(plane, node, smoke_namespace, "smoke", {"containers": [container]})
    connection, _ = listener.accept()
    with connection:
        sent = connection.recv(64).decode()
    assert ipaddress.ip_address(sent) in controlplane.POD_SUBNET
    assert (status["phase"], terminated(status)["exitCode"]) == ("Succeeded", 0), terminated(status)
    assert terminated(status)["message"] == f"{sent} token=True"
    assert status["podIP"] == sent


def test_spark_image_runs_a_query_on_a_read_only_root_as_the_chart_mounts_it(
    plane: ControlPlane,
    node: nodes.Node,
    smoke_namespace: str,
    renderer: render.Renderer,
    loaded: set[str],
    project_images: dict[str, str],
) -> None:
    """Issue 10's first defect, in a real pod of the project's Spark image: the driver container's security context
    and its emptyDir mounts (/tmp and the work dir), taken from the chart's SparkApplication, and a first query."""
    (app, *_) = [obj for obj in renderer.stack("kind") if obj["kind"] == "SparkApplication"]
    driver = app["spec"]["driver"]
    volumes = {v["name"]: v for v in app["spec"]["volumes"]}
    assert all("emptyDir" in volumes[m["name"]] for m in driver["volumeMounts"])
    query = "from pyspark.sql import SparkSession; print(SparkSession.builder.getOrCreate().range(5).count())"
    limit = parse_bytes(driver["memory"]) + parse_bytes(driver["memoryOverhead"])
    submit = f"spark-submit --master 'local[1]' --driver-memory {driver['memory']} /tmp/query.py"
    container = {
        "name": "query",
        "image": project_images["spark"],
        "imagePullPolicy": "Never",
        # Arguments only: the image's entrypoint runs them, as it runs a driver's.
        "args": ["sh", "-c", f"echo '{query}' > /tmp/query.py && {submit}"],
        "resources": {"limits": {"memory": str(limit)}},
        "securityContext": driver["securityContext"],
        "volumeMounts": driver["volumeMounts"],
        "terminationMessagePolicy": "FallbackToLogsOnError",
    }
    spec = {
        "securityContext": driver["podSecurityContext"],
        "containers": [container],
        "volumes": [volumes[m["name"]] for m in driver["volumeMounts"]],
    }
    status = run_pod(plane, node, smoke_namespace, "spark-query", spec)
    assert (status["phase"], terminated(status)["exitCode"]) == ("Succeeded", 0), terminated(status).get("message")


# --- Step 4: what a kind cluster runs beside the kubelet: scheduler, Services, cluster DNS -------------------------


@pytest.fixture(scope="session")
def services(
    plane: ControlPlane,
    node: nodes.Node,
    controller_manager: controlplane.Process,
    tool: Callable[[str], Path],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[None]:
    """The scheduler, kube-proxy and CoreDNS, running."""
    folder = tmp_path_factory.mktemp("addons")
    with (
        nodes.scheduler(plane, tool("kube-scheduler"), INSTALL_TIMEOUT),
        addons.service_proxy(plane, tool("kube-proxy"), folder / "proxy", INSTALL_TIMEOUT),
        addons.cluster_dns(plane, folder / "dns", INSTALL_TIMEOUT),
    ):
        yield


def test_kube_proxy_keeps_its_rules_in_nftables_tables_of_its_own(services: None) -> None:
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


def python_pod(image: str, script: str) -> dict[str, Any]:
    container = {
        "name": "main",
        "image": image,
        "imagePullPolicy": "Never",
        "command": ["python3", "-c", script],
        "securityContext": {"runAsUser": 10001, "readOnlyRootFilesystem": True},
        "terminationMessagePolicy": "FallbackToLogsOnError",
    }
    return {"containers": [container]}


def test_an_image_that_is_not_loaded_is_never_fetched_from_off_the_machine(
    plane: ControlPlane, node: nodes.Node, services: None, smoke_namespace: str
) -> None:
    """The scheduler binds the pod to the node, and the pull that follows goes to the closed loopback proxy."""
    name = "never-loaded"
    spec = python_pod("cryptolake-test/never-loaded:1", "")
    spec["containers"][0]["imagePullPolicy"] = "Always"
    path = f"/api/v1/namespaces/{smoke_namespace}/pods/{name}"
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": smoke_namespace}, "spec": spec}
    plane.api.apply(path, pod)

    def waiting() -> dict[str, Any]:
        statuses = plane.api.get(path)["status"].get("containerStatuses", [])
        return dict(statuses[0]["state"].get("waiting", {})) if statuses else {}

    try:
        controlplane.wait_for("the pull to fail", lambda: "127.0.0.1:9" in waiting().get("message", ""), 300)
        assert plane.api.get(path)["spec"]["nodeName"] == node.name
        assert waiting()["reason"] in ("ErrImagePull", "ImagePullBackOff")
    finally:
        plane.api.request("DELETE", f"{path}?gracePeriodSeconds=0")


def test_a_pod_reaches_another_through_a_service_by_its_short_name(
    plane: ControlPlane, services: None, smoke_namespace: str, loaded: set[str], standins: dict[str, str]
) -> None:
    """A server pod behind a Service, a client pod calling it `http://echo/...` as the charts call `minio:9000`:
    CoreDNS answers with the Service's address, and kube-proxy sends the connection to the server pod."""
    name = "echo"
    server = python_pod(standins["python"], "import runpy, sys; sys.argv = ['', '8080', '--directory', '/etc']; "
                        "runpy.run_module('http.server', run_name='__main__')")  # fmt: skip
    server_path = f"/api/v1/namespaces/{smoke_namespace}/pods/{name}"
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
    plane.api.apply(f"/api/v1/namespaces/{smoke_namespace}/services/{name}", service)
    try:
        fetch = "urllib.request.urlopen('http://echo/hostname', timeout=5).read().decode().strip()"
        status = run_pod(plane, None, smoke_namespace, "echo-client", python_pod(standins["python"], retrying(fetch)))
        assert (status["phase"], terminated(status)["message"]) == ("Succeeded", name), terminated(status)
    finally:
        plane.api.request("DELETE", f"{server_path}?gracePeriodSeconds=0")


def test_a_pod_reaches_the_api_server_through_the_kubernetes_service(
    plane: ControlPlane, services: None, smoke_namespace: str, loaded: set[str], standins: dict[str, str]
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
    status = run_pod(plane, None, smoke_namespace, "api-client", python_pod(standins["python"], retrying(version)))
    assert status["phase"] == "Succeeded", terminated(status)
    assert terminated(status)["message"] == plane.api.get("/version")["gitVersion"]


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
    services: None,
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
    status = run_pod(plane, None, smoke_namespace, "outside-client", python_pod(standins["python"], script))
    assert status["phase"] == "Succeeded", terminated(status)
    assert terminated(status)["message"] == "TimeoutError"


# --- Step 5: the minio release's pods: the server on its volume, its setup Job, and the Job again on an upgrade -----

NAMESPACE = render.namespace()
MINIO_RELEASE = "minio"


def namespaced(kind: str, name: str = "") -> str:
    """REST path of the release namespace's objects of a kind ("apps/v1/deployments", "v1/pods")."""
    group = "/api" if kind.startswith("v1/") else "/apis"
    version, plural = kind.rsplit("/", 1)
    return f"{group}/{version}/namespaces/{NAMESPACE}/{plural}" + (f"/{name}" if name else "")


def selected(api: controlplane.Api, kind: str, selector: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = api.get(namespaced(kind) + "?labelSelector=" + selector)["items"]
    return items


def of(release: str, component: str) -> str:
    """The label selector of a release's component."""
    return f"app.kubernetes.io/instance={release},app.kubernetes.io/component={component}"


def setup_jobs(api: controlplane.Api) -> list[dict[str, Any]]:
    return selected(api, "batch/v1/jobs", of(MINIO_RELEASE, "setup"))


def provide_volumes(api: controlplane.Api, folder: Path) -> None:
    """What kind's local-path provisioner does for each unbound claim of the namespace: a folder of the node, open to
    any user as that provisioner leaves it, as a PersistentVolume bound to the claim."""
    for claim in api.get(namespaced("v1/persistentvolumeclaims"))["items"]:
        name = claim["metadata"]["name"]
        path = folder / name
        path.mkdir(parents=True, exist_ok=True)
        path.chmod(0o777)
        volume = {
            "apiVersion": "v1",
            "kind": "PersistentVolume",
            "metadata": {"name": f"{NAMESPACE}-{name}"},
            "spec": {
                "capacity": claim["spec"]["resources"]["requests"],
                "accessModes": claim["spec"]["accessModes"],
                "hostPath": {"path": str(path), "type": "Directory"},
                "claimRef": {"namespace": NAMESPACE, "name": name},
                "persistentVolumeReclaimPolicy": "Retain",
            },
        }
        api.apply(f"/api/v1/persistentvolumes/{NAMESPACE}-{name}", volume)


def job_done(api: controlplane.Api, job: dict[str, Any]) -> bool:
    status = api.get(namespaced("batch/v1/jobs", job["metadata"]["name"])).get("status", {})
    if status.get("failed", 0) and not status.get("active", 0) and not status.get("succeeded", 0):
        raise AssertionError(f"job {job['metadata']['name']} failed: {status}")
    return bool(status.get("succeeded", 0))


def available(api: controlplane.Api, deployment: str) -> bool:
    status = api.get(namespaced("apps/v1/deployments", deployment)).get("status", {})
    return bool(status.get("availableReplicas", 0) >= 1)


def pod_log(api: controlplane.Api, pod: str) -> str:
    """What `kubectl logs` shows: the API server reads it from the kubelet."""
    return str(api.get(namespaced("v1/pods", pod) + "/log"))


@pytest.fixture(scope="session")
def minio(
    cluster: Cluster,
    node: nodes.Node,
    services: None,
    docker: images.Docker,
    tool: Callable[[str], Path],
    installed: None,
    tmp_path_factory: pytest.TempPathFactory,
) -> dict[str, Any]:
    """The minio release of tier 1 running: stand-ins of the images its Deployment and Job name, loaded; a volume for
    its claim; the server available and the setup Job complete. Returns the Job."""
    (deployment,) = selected(cluster.api, "apps/v1/deployments", f"app.kubernetes.io/instance={MINIO_RELEASE}")
    (job,) = setup_jobs(cluster.api)
    server_image = deployment["spec"]["template"]["spec"]["containers"][0]["image"]
    client_image = job["spec"]["template"]["spec"]["containers"][0]["image"]
    minio_binary = minio_server.binary(LocalPaths.of(Settings()))
    tags = [
        images.build_standin(docker, "minio", server_image, {}, {"minio": minio_binary}),
        images.build_standin(docker, "mc", client_image, {}, {"mc": tool("mc")}),
    ]
    load_images(node, docker, tags, tmp_path_factory.mktemp("minio-images"))
    provide_volumes(cluster.api, tmp_path_factory.mktemp("volumes"))
    name = deployment["metadata"]["name"]
    controlplane.wait_for(f"deployment {name} available", lambda: available(cluster.api, name), INSTALL_TIMEOUT)
    controlplane.wait_for("the setup job to complete", lambda: job_done(cluster.api, job), INSTALL_TIMEOUT)
    return job


def pod_address(api: controlplane.Api, selector: str) -> str:
    (pod,) = [p for p in selected(api, "v1/pods", selector) if p["status"].get("phase") == "Running"]
    return str(pod["status"]["podIP"])


def lake_settings(api: controlplane.Api, settings: Settings) -> Settings:
    """``settings`` reading the release's lake from this machine: MinIO's pod address (Service addresses route only
    from pods), as the lake user of the release's Secret."""
    secret = api.get(namespaced("v1/secrets", f"{MINIO_RELEASE}-lake-user"))
    keys = {key: base64.b64decode(value).decode() for key, value in secret["data"].items()}
    address = pod_address(api, of(MINIO_RELEASE, "server"))
    return settings.with_(s3_endpoint=f"http://{address}:9000", **keys)


def test_minio_runs_from_its_chart_and_its_setup_job_gives_the_lake_user_its_bucket(
    cluster: Cluster, minio: dict[str, Any]
) -> None:
    """The lake user of the release's Secret writes and reads its bucket, and nothing else, over the server pod's
    address."""
    fs = lake.filesystem(lake_settings(cluster.api, Settings()))
    with fs.open_output_stream("lakehouse/tier2/hello.txt") as out:
        out.write(b"hello")
    with fs.open_input_stream("lakehouse/tier2/hello.txt") as read:
        assert read.read() == b"hello"
    # A bucket the root user makes is beyond the lake user's policy.
    root = cluster.api.get(namespaced("v1/secrets", f"{MINIO_RELEASE}-root"))["data"]
    root_fs = pafs.S3FileSystem(
        access_key=base64.b64decode(root["MINIO_ROOT_USER"]).decode(),
        secret_key=base64.b64decode(root["MINIO_ROOT_PASSWORD"]).decode(),
        endpoint_override=urlsplit(lake_settings(cluster.api, Settings()).s3_endpoint).netloc,
        scheme="http",
        allow_bucket_creation=True,
    )
    root_fs.create_dir("elsewhere")
    with pytest.raises(OSError, match="ACCESS_DENIED"), fs.open_output_stream("elsewhere/hello.txt") as out:
        out.write(b"hello")


def test_minio_setup_job_runs_again_on_an_upgrade_and_leaves_what_exists(
    cluster: Cluster, minio: dict[str, Any], pins: dict[str, tools.Pin]
) -> None:
    """Issue 10's fourth defect in real pods: the Job, gone once its TTL passes (deleted here at once), comes back
    with `helm upgrade` and completes again on the bucket, policy and user that exist, with a shell and mc only."""
    name = minio["metadata"]["name"]
    cluster.api.request("DELETE", namespaced("batch/v1/jobs", name) + "?propagationPolicy=Foreground")
    controlplane.wait_for("the job gone", lambda: not setup_jobs(cluster.api), INSTALL_TIMEOUT)
    release = render.skaffold_release(MINIO_RELEASE)
    cluster.helm_run(*render.helm_install(release, tools.operator_chart(pins), {}, verb="upgrade"))
    (again,) = setup_jobs(cluster.api)
    controlplane.wait_for("the setup job to complete again", lambda: job_done(cluster.api, again), INSTALL_TIMEOUT)
    (pod,) = selected(cluster.api, "v1/pods", f"job-name={name}")
    assert re.search(r"^policy \S+ is attached to \S+ already$", pod_log(cluster.api, pod["metadata"]["name"]), re.M)


# --- Step 6: the pipeline from the cryptolake release: the ingestor Deployment and the three SparkApplications ------

# The suite's Kafka broker stands in for the redpanda release, whose image cannot be had here; it listens on the
# node's address, which pods reach. The synthetic venue listens there too, in place of Binance.
SYMBOLS = ("BTC-USDT", "ETH-USDT")
TRADES = 2_400
# Trades per second of event time, which the venue keeps: 400 s of sending, long enough for the Spark pods to start
# on two busy cores and for bronze's driver to be killed while the venue still sends.
RATE = 6.0
SEED = 11
WATERMARK_S = 5
APP_RELEASE = "cryptolake"


@dataclass(frozen=True)
class InCluster:
    """The release's pipeline as this machine reads it: Kafka on the node's address, the lake at MinIO's pod."""

    settings: Settings
    trades: list[Trade]


class NodeKafka(Kafka):
    """Local mode's broker listening on the node's address instead of loopback, which local mode insists on (and
    checks): the pods reach this machine there, and this machine reaches it too."""

    def __init__(self, settings: Settings) -> None:
        host, port = settings.kafka_bootstrap.rsplit(":", 1)
        super().__init__(settings.with_(kafka_bootstrap=f"{controlplane.LOOPBACK}:{port}"))
        self.settings, self.host = settings, host


@pytest.fixture(scope="session")
def kafka_on_node(installed: None, node: nodes.Node, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    host = str(node.address.ip)
    settings = Settings(
        kafka_bootstrap=f"{host}:{free_port(host)}",
        kafka_controller_port=free_port(host),
        local_home=str(tmp_path_factory.mktemp("kafka-on-node")),
        symbols=SYMBOLS,
        gold_watermark=f"{WATERMARK_S} seconds",
        trigger_interval="2 seconds",
    )
    broker = NodeKafka(settings)
    broker.start(timeout=INSTALL_TIMEOUT)
    try:
        ensure_topic(settings, partitions=3)
        yield settings
    finally:
        broker.stop()


@pytest.fixture(scope="session")
def in_cluster(
    cluster: Cluster,
    node: nodes.Node,
    minio: dict[str, Any],
    kafka_on_node: Settings,
    project_images: dict[str, str],
    loaded: set[str],
    pins: dict[str, tools.Pin],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[InCluster]:
    """The synthetic venue on the node's address, then the cryptolake release upgraded as `skaffold dev` would
    redeploy it with images of this tier's tag, its settings pointed at that venue and that broker."""
    folder = tmp_path_factory.mktemp("in-cluster")
    host = str(node.address.ip)
    start_ms = int(time.time() * 1000) - 300_000  # in the past: event times stay near ingest times
    venue_port = free_port(host)
    venue_args = ["--host", host, "--port", str(venue_port), "--symbols", ",".join(SYMBOLS), "--rate", str(RATE)]
    venue_args += ["--count", str(TRADES), "--seed", str(SEED), "--start-ms", str(start_ms), "--speed", "1"]
    venue = controlplane.spawn("venue", [sys.executable, "-m", "cryptolake.venue.server", *venue_args], folder)
    values = {
        "settings": {
            "kafka_bootstrap": kafka_on_node.kafka_bootstrap,
            "binance_url": f"ws://{host}:{venue_port}",
            "symbols": list(SYMBOLS),
            "gold_watermark": kafka_on_node.gold_watermark,
            "trigger_interval": kafka_on_node.trigger_interval,
        }
    }
    values_file = folder / "values.yaml"
    values_file.write_text(yaml.safe_dump(values))
    release = render.skaffold_release(APP_RELEASE)
    upgrade = render.helm_install(release, tools.operator_chart(pins), render.skaffold_images(IMAGE_TAG), "upgrade")
    try:
        cluster.helm_run(*upgrade, "--values", values_file)
        trades = list(generate(SYMBOLS, seed=SEED, start_ms=start_ms, rate=RATE, count=TRADES))
        yield InCluster(lake_settings(cluster.api, kafka_on_node), trades)
    finally:
        venue.stop()


def frames_in_kafka(settings: Settings) -> int:
    """Records of the topic, all partitions."""
    consumer = Consumer({"bootstrap.servers": settings.kafka_bootstrap, "group.id": "tier2-count"})
    try:
        metadata = consumer.list_topics(settings.kafka_topic, timeout=10)
        partitions = metadata.topics[settings.kafka_topic].partitions
        return sum(
            consumer.get_watermark_offsets(TopicPartition(settings.kafka_topic, p), timeout=10)[1] for p in partitions
        )
    finally:
        consumer.close()


def test_ingestor_deployment_streams_the_venues_trades_into_kafka(cluster: Cluster, in_cluster: InCluster) -> None:
    """Ready (its /readyz: connected to the venue and to Kafka) as the kubelet probes it, and frames arrive."""
    (deployment,) = selected(cluster.api, "apps/v1/deployments", of(APP_RELEASE, "ingestor"))
    name = deployment["metadata"]["name"]
    controlplane.wait_for(f"deployment {name} available", lambda: available(cluster.api, name), INSTALL_TIMEOUT)
    controlplane.wait_for("frames in Kafka", lambda: frames_in_kafka(in_cluster.settings) > 0, INSTALL_TIMEOUT)
    pods = selected(cluster.api, "v1/pods", of(APP_RELEASE, "ingestor"))
    running = [pod["spec"]["containers"][0]["image"] for pod in pods if pod["status"].get("phase") == "Running"]
    assert running == [f"cryptolake-ingestor:{IMAGE_TAG}"]


def layer_driver(api: controlplane.Api, layer: str) -> dict[str, Any] | None:
    """The layer's running driver pod, if one runs."""
    running = [
        pod
        for pod in selected(api, "v1/pods", f"{of(APP_RELEASE, layer)},spark-role=driver")
        if pod["status"].get("phase") == "Running" and not pod["metadata"].get("deletionTimestamp")
    ]
    return running[0] if running else None


def rows(settings: Settings, table: str) -> int:
    with suppress(OSError, FileNotFoundError):
        return int(lake.read_table(settings, table).num_rows)
    return 0


def test_a_killed_bronze_driver_is_resubmitted_by_the_operator(cluster: Cluster, in_cluster: InCluster) -> None:
    """Mid-stream (bronze holds some of the trades, the venue still sends), bronze's driver pod is deleted; the
    SparkApplication's restart policy brings a new driver, which goes on from the checkpoint."""
    settings = in_cluster.settings
    controlplane.wait_for("bronze to hold trades", lambda: rows(settings, BRONZE_TABLE) > 0, INSTALL_TIMEOUT)
    before = layer_driver(cluster.api, "bronze")
    assert before is not None
    assert rows(settings, BRONZE_TABLE) < TRADES, "the stream ended before the driver could be killed mid-way"
    name = before["metadata"]["name"]
    cluster.api.request("DELETE", namespaced("v1/pods", name) + "?gracePeriodSeconds=0")

    def replaced() -> bool:
        after = layer_driver(cluster.api, "bronze")
        return after is not None and after["metadata"]["uid"] != before["metadata"]["uid"]

    controlplane.wait_for("a new bronze driver", replaced, INSTALL_TIMEOUT)


def test_gold_bars_from_the_cluster_equal_the_reference_and_every_trade_is_kept_once(
    cluster: Cluster, in_cluster: InCluster
) -> None:
    """Read back from MinIO: every final bar equal to the reference, bronze every frame once, silver every trade once,
    across the driver killed above."""
    settings, trades = in_cluster.settings, in_cluster.trades
    expected = reference.bars(reference.from_synthetic(t) for t in trades)
    final = final_bars(expected, max(t.time_ms for t in trades) * 1000, WATERMARK_S)

    def gold_keys() -> set[tuple[str, str, int]]:
        with suppress(OSError, FileNotFoundError):
            return {bar_key(b) for b in lake.read_bars(settings).to_pylist()}
        return set()

    controlplane.wait_for("every final bar in gold", lambda: final <= gold_keys(), INSTALL_TIMEOUT)
    assert_gold_equals(lake.read_bars(settings).to_pylist(), expected, final)
    # The trades after the last final bar may still be on their way: every one in each layer, then exactly these.
    for table in (BRONZE_TABLE, SILVER_TABLE):
        controlplane.wait_for(f"every trade in {table}", lambda t=table: rows(settings, t) >= TRADES, INSTALL_TIMEOUT)
    bronze = lake.read_table(settings, BRONZE_TABLE)
    assert sorted(bronze["value"].to_pylist()) == sorted(t.binance_frame().encode() for t in trades)
    silver = lake.read_table(settings, SILVER_TABLE).to_pylist()
    assert sorted((t["symbol"], int(t["trade_id"])) for t in silver) == sorted((t.symbol, t.trade_id) for t in trades)
