"""Real pods on the test control plane (issue 10, tier 2), step by step, each step's tests kept whatever the next
does: a node (a kubelet from the API server's module, containerd and runc from Debian's packages, the pinned CNI
plugins) registered Ready; the stand-in images and the project's two Dockerfiles built unchanged on them, loaded into
the node; then pods of them running on the node.

The control plane is conftest's, shared with test_control_plane.py, inside the blackhole routes checked before
anything starts. Where tier 2 stops, and why, is in the README's Kubernetes section: no scheduler, Service routing or
cluster DNS runs, so the charts' own workloads do not run here yet.
"""

from __future__ import annotations

import ipaddress
import json
import socket
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pyspark
import pytest

from core.jars import read_pins
from cryptolake.k8s import tools
from cryptolake.local.paths import REPO_ROOT
from tests.k8s import controlplane, images, render
from tests.k8s import node as nodes
from tests.k8s.conftest import INSTALL_TIMEOUT, needs_root
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


def test_node_leaves_this_machines_iptables_alone(node: nodes.Node) -> None:
    """No kubelet chain in any table: the node's only change to the host's network is its bridge."""
    for command in ("iptables-save", "ip6tables-save"):
        assert "KUBE-" not in subprocess.run([command], capture_output=True, text=True, check=True).stdout, command


def test_pod_routes_stay_on_the_bridge(node: nodes.Node) -> None:
    """The pod subnet's route goes to the bridge, a device of this machine, never through a gateway."""
    routes = json.loads(
        subprocess.run(["ip", "-j", "route", "show", str(nodes.POD_SUBNET)], capture_output=True, check=True).stdout
    )
    assert [(r["dev"], r.get("gateway")) for r in routes] == [(nodes.BRIDGE, None)]


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
    folder = tmp_path_factory.mktemp("image-archives")
    for tag in (standins["python"], *project_images.values()):
        archive = images.save(docker, tag, folder)
        node.load(archive)
        archive.unlink()
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


def run_pod(plane: ControlPlane, node: nodes.Node, namespace: str, name: str, spec: dict[str, Any]) -> dict[str, Any]:
    """Run a pod to completion on the node, placed there by name (no scheduler needed); returns its last status."""
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"nodeName": node.name, "restartPolicy": "Never", **spec},
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
    assert ipaddress.ip_address(sent) in nodes.POD_SUBNET
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
