"""Tier 2, step 3: pods run on the node, from a stand-in image and from the project's Spark image; a pod that cannot
start ends its wait within minutes, saying why (see test_pods_1_node.py for the steps)."""

from __future__ import annotations

import ipaddress
import socket
import time

import pytest

from tests.k8s import controlplane, render, workloads
from tests.k8s import node as nodes
from tests.k8s.conftest import needs_root
from tests.k8s.controlplane import ControlPlane
from tests.k8s.test_contract import parse_bytes

pytestmark = needs_root


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
    spec = workloads.python_pod(standins["python"], script)
    status = workloads.run_pod(plane.api, node, smoke_namespace, "smoke", spec)
    connection, _ = listener.accept()
    with connection:
        sent = connection.recv(64).decode()
    assert ipaddress.ip_address(sent) in controlplane.POD_SUBNET
    terminated = workloads.terminated(status)
    assert (status["phase"], terminated["exitCode"]) == ("Succeeded", 0), terminated
    assert terminated["message"] == f"{sent} token=True"
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
    status = workloads.run_pod(plane.api, node, smoke_namespace, "spark-query", spec)
    terminated = workloads.terminated(status)
    assert (status["phase"], terminated["exitCode"]) == ("Succeeded", 0), terminated.get("message")


# A pod that cannot start shows nothing new after its first events: half a minute of that tells.
SHORT_STALL = 30


def test_a_pod_that_cannot_start_fails_its_wait_within_the_stall_with_the_kubelets_reason(
    plane: ControlPlane, node: nodes.Node, smoke_namespace: str, loaded: set[str]
) -> None:
    """Its image is not in the node and may not be pulled: the wait for it to finish ends once nothing new shows,
    long before the suite's timeouts, and its error carries the pod's events and the kubelet's error line."""
    name = "never-starts"
    container = {"name": "main", "image": "cryptolake-test/never-loaded:1", "imagePullPolicy": "Never"}
    pods = workloads.start_pod(plane.api, node, smoke_namespace, name, {"containers": [container]})
    started = time.monotonic()
    try:
        with pytest.raises(controlplane.ControlPlaneError, match="no progress") as failed:
            workloads.finished(pods, name, stall=SHORT_STALL)
    finally:
        plane.api.request("DELETE", workloads.namespaced("v1/pods", name, smoke_namespace) + "?gracePeriodSeconds=0")
    assert time.monotonic() - started < workloads.STALL
    message = str(failed.value)
    assert "event ErrImageNeverPull" in message, message
    kubelet = [line for line in message.splitlines() if line.lstrip().startswith("kubelet: ")]
    assert any("ErrImageNeverPull" in line for line in kubelet), message
