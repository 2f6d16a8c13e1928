"""The deployment on a real control plane: etcd and kube-apiserver built from the pins, the four releases installed
with helm in skaffold.yaml's order, and the pinned Spark Operator's controller and webhook running against it.

Nothing here runs a pod: a driver pod is created but never starts, hence no executor pod is ever made, and no
Deployment, Job or StatefulSet gets a pod yet. Instead of helm's --wait, which waits on pods, the operator's
processes are waited for through their health endpoints. Tier 2 (test_pods_*.py), later in the same session, adds
the node, the scheduler and the rest, and runs the releases' pods.
"""

from __future__ import annotations

import base64
import json
import re
import subprocess
import urllib.parse
from ipaddress import IPv4Network
from typing import Any

import pytest
import yaml

from core.settings import secret_env_names
from cryptolake.k8s import tools
from cryptolake.local.paths import REPO_ROOT
from tests.k8s import controlplane, render
from tests.k8s.conftest import INSTALL_TIMEOUT, TIER1_TAG, Cluster, needs_root
from tests.k8s.controlplane import Api, ControlPlane
from tests.k8s.test_contract import parse_bytes

pytestmark = needs_root

NAMESPACE = render.namespace()
DRIVER_CONTAINER = "spark-kubernetes-driver"
LAYERS = ("bronze", "silver", "gold")


def applications(api: Api) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = api.get(
        f"/apis/sparkoperator.k8s.io/v1beta2/namespaces/{NAMESPACE}/sparkapplications"
    )["items"]
    return items


@pytest.fixture(scope="session")
def drivers(cluster: Cluster) -> dict[str, tuple[dict[str, Any], dict[str, Any]]]:
    """Each layer's SparkApplication once SUBMITTED, with the driver pod spark-submit created for it."""
    apps = applications(cluster.api)
    assert {app["metadata"]["labels"]["app.kubernetes.io/component"] for app in apps} == set(LAYERS)

    def states() -> dict[str, str]:
        return {
            app["metadata"]["name"]: app.get("status", {}).get("applicationState", {}).get("state", "")
            for app in applications(cluster.api)
        }

    try:
        controlplane.wait_for(
            "every SparkApplication SUBMITTED", lambda: set(states().values()) == {"SUBMITTED"}, INSTALL_TIMEOUT
        )
    except controlplane.ControlPlaneError as exc:
        status = {app["metadata"]["name"]: app.get("status") for app in applications(cluster.api)}
        log = cluster.plane.processes[0].log.parent / "spark-operator-controller.log"
        pytest.fail(f"{exc}\n{json.dumps(status, indent=1)}\n{log.read_text()[-8000:]}")
    found = {}
    for app in applications(cluster.api):
        pod = cluster.api.get(f"/api/v1/namespaces/{NAMESPACE}/pods/{app['status']['driverInfo']['podName']}")
        found[app["metadata"]["labels"]["app.kubernetes.io/component"]] = (app, pod)
    return found


def container(pod: dict[str, Any]) -> dict[str, Any]:
    (found,) = [c for c in pod["spec"]["containers"] if c["name"] == DRIVER_CONTAINER]
    return dict(found)


def test_cluster_ranges_are_dropped_before_anything_starts(network: None) -> None:
    """No packet for a service or pod address leaves the machine: the kernel has no route for them but a blackhole."""
    for network_range in controlplane.CLUSTER_CIDRS:
        assert controlplane.dropped(network_range), network_range
    routes = json.loads(
        subprocess.run(["ip", "-j", "route", "show", "type", "blackhole"], capture_output=True, check=True).stdout
    )
    assert {str(n) for n in controlplane.CLUSTER_CIDRS} <= {r["dst"] for r in routes}


def test_a_second_test_node_on_the_machine_is_refused(network: None) -> None:
    """Two runs would share the bridge's name and the cluster ranges' routes: the one that comes second stops."""
    with pytest.raises(controlplane.ControlPlaneError, match="another test node runs"), controlplane.sole_node():
        pass


def test_what_a_killed_run_left_is_deleted(network: None) -> None:
    """A bridge with a pod's port, an nftables table and a blackhole route, as a run killed mid-way leaves them, are
    gone after reclaim(); names and range of this test's own, not the live node's."""
    bridge, table, route = "cl-left0", "inet cryptolake_left", IPv4Network("198.51.100.0/24")  # TEST-NET-2
    setup = [
        ["ip", "link", "add", bridge, "type", "bridge"],
        ["ip", "link", "add", "cl-left-host", "type", "veth", "peer", "name", "cl-left-pod"],
        ["ip", "link", "set", "cl-left-host", "master", bridge],
        ["nft", "add", "table", *table.split()],
        ["ip", "route", "add", "blackhole", str(route)],
    ]
    try:
        for command in setup:
            subprocess.run(command, capture_output=True, check=True)

        deleted = controlplane.reclaim(bridge, (table,), (route,))

        assert deleted == [f"bridge {bridge}", f"table {table}", f"blackhole route {route}"]
        links = json.loads(subprocess.run(["ip", "-j", "link"], capture_output=True, check=True).stdout)
        assert not {bridge, "cl-left-host", "cl-left-pod"} & {link["ifname"] for link in links}
        tables = subprocess.run(["nft", "list", "tables"], capture_output=True, text=True, check=True).stdout
        assert f"table {table}" not in tables
        blackholes = subprocess.run(["ip", "route", "show", "type", "blackhole"], capture_output=True, text=True)
        assert str(route) not in blackholes.stdout
    finally:
        for command in (["ip", "link", "del", "cl-left-host"], ["ip", "link", "del", bridge]):
            subprocess.run(command, capture_output=True, check=False)
        subprocess.run(["nft", "delete", "table", *table.split()], capture_output=True, check=False)
        subprocess.run(["ip", "route", "del", "blackhole", str(route)], capture_output=True, check=False)


def test_api_server_reports_the_kind_nodes_version(plane: ControlPlane, pins: dict[str, tools.Pin]) -> None:
    """Stamped at build time, so that charts' kubeVersion constraints see the real version."""
    assert plane.api.get("/version")["gitVersion"] == pins["kubernetes"].version
    assert pins["kube-apiserver"].version == pins["kubernetes"].version


def test_etcd_is_the_one_kubernetes_is_built_against(pins: dict[str, tools.Pin]) -> None:
    requires = (tools.module_dir(pins["kubernetes"]) / "go.mod").read_text()
    assert f"{pins['etcd'].module} {pins['etcd'].version}" in requires


def test_every_release_is_deployed_in_skaffolds_order(cluster: Cluster) -> None:
    listed = json.loads(cluster.helm_run("list", "--namespace", NAMESPACE, "--output", "json"))
    releases = [r["name"] for r in render.skaffold_config()["deploy"]["helm"]["releases"]]
    assert {r["name"]: r["status"] for r in listed} == dict.fromkeys(releases, "deployed")
    assert [r["name"] for r in sorted(listed, key=lambda r: r["updated"])] == releases


def test_webhooks_are_reached_on_loopback(cluster: Cluster) -> None:
    for kind in ("mutatingwebhookconfigurations", "validatingwebhookconfigurations"):
        for config in cluster.api.get(f"/apis/admissionregistration.k8s.io/v1/{kind}")["items"]:
            for webhook in config["webhooks"]:
                assert urllib.parse.urlsplit(webhook["clientConfig"]["url"]).hostname == controlplane.LOOPBACK


def test_every_spark_application_is_submitted(drivers: dict[str, tuple[dict[str, Any], dict[str, Any]]]) -> None:
    for layer, (app, pod) in drivers.items():
        assert app["status"]["applicationState"]["state"] == "SUBMITTED", layer
        assert pod["metadata"]["labels"]["spark-role"] == "driver", layer


@pytest.mark.parametrize("layer", LAYERS)
def test_driver_pod_runs_the_image_skaffold_sets(
    drivers: dict[str, tuple[dict[str, Any], dict[str, Any]]], layer: str
) -> None:
    _, pod = drivers[layer]
    assert container(pod)["image"] == f"cryptolake-spark:{TIER1_TAG}"


@pytest.mark.parametrize("layer", LAYERS)
def test_driver_pod_writes_only_to_its_emptydirs(
    drivers: dict[str, tuple[dict[str, Any], dict[str, Any]]], layer: str
) -> None:
    """The webhook mounts the chart's volumes: /tmp and the image's working directory, where Spark 4 writes."""
    _, pod = drivers[layer]
    workdir = re.findall(r"^WORKDIR (\S+)$", (REPO_ROOT / "Dockerfile").read_text(), re.MULTILINE)[-1]
    volumes = {v["name"]: v for v in pod["spec"]["volumes"]}
    mounts = {m["mountPath"]: m for m in container(pod)["volumeMounts"]}
    for path in ("/tmp", workdir):
        assert path in mounts, path
        assert not mounts[path].get("readOnly"), path
        assert "emptyDir" in volumes[mounts[path]["name"]], path


@pytest.mark.parametrize("layer", LAYERS)
def test_driver_pod_gets_secrets_by_reference_only(
    cluster: Cluster, drivers: dict[str, tuple[dict[str, Any], dict[str, Any]]], layer: str
) -> None:
    _, pod = drivers[layer]
    env = {e["name"]: e for e in container(pod)["env"]}
    referenced: set[str] = set()
    for name in secret_env_names():
        assert "value" not in env[name], name
        referenced.add(env[name]["valueFrom"]["secretKeyRef"]["name"])
    secrets = [cluster.api.get(f"/api/v1/namespaces/{NAMESPACE}/secrets/{name}") for name in sorted(referenced)]
    values = {base64.b64decode(v).decode() for secret in secrets for v in secret["data"].values()}
    plain = " ".join(e.get("value", "") for c in pod["spec"]["containers"] for e in c.get("env", []))
    plain += yaml.safe_dump(pod["metadata"].get("annotations", {}))
    assert values and not [v for v in values if v in plain]


@pytest.mark.parametrize("layer", LAYERS)
def test_driver_pod_is_non_root_on_a_read_only_root_filesystem(
    drivers: dict[str, tuple[dict[str, Any], dict[str, Any]]], layer: str
) -> None:
    _, pod = drivers[layer]
    assert pod["spec"]["securityContext"]["runAsNonRoot"] is True
    assert pod["spec"]["securityContext"]["runAsUser"] > 0
    context = container(pod)["securityContext"]
    assert context["readOnlyRootFilesystem"] is True
    assert context["allowPrivilegeEscalation"] is False
    assert context["capabilities"]["drop"] == ["ALL"]


@pytest.mark.parametrize("layer", LAYERS)
def test_driver_pod_memory_limit_is_heap_plus_overhead(
    drivers: dict[str, tuple[dict[str, Any], dict[str, Any]]], layer: str
) -> None:
    app, pod = drivers[layer]
    shape = app["spec"]["driver"]
    limit = parse_bytes(container(pod)["resources"]["limits"]["memory"])
    assert limit == parse_bytes(shape["memory"]) + parse_bytes(shape["memoryOverhead"])


@pytest.mark.parametrize("layer", LAYERS)
def test_kubectl_logs_selectors_find_the_driver(
    cluster: Cluster, drivers: dict[str, tuple[dict[str, Any], dict[str, Any]]], layer: str
) -> None:
    """docs/kubernetes.md's `kubectl logs -l app.kubernetes.io/component=<layer>[,spark-role=driver]`."""
    _, pod = drivers[layer]
    for selector in (f"app.kubernetes.io/component={layer}", f"app.kubernetes.io/component={layer},spark-role=driver"):
        query = urllib.parse.urlencode({"labelSelector": selector})
        listed = cluster.api.get(f"/api/v1/namespaces/{NAMESPACE}/pods?{query}")["items"]
        assert [p["metadata"]["name"] for p in listed] == [pod["metadata"]["name"]], selector


def allowed(api: Api, account: str, namespace: str, verb: str, resource: str) -> bool:
    """`kubectl auth can-i --as system:serviceaccount:<namespace>:<account>`."""
    review = {
        "apiVersion": "authorization.k8s.io/v1",
        "kind": "SubjectAccessReview",
        "spec": {
            "user": f"system:serviceaccount:{NAMESPACE}:{account}",
            "groups": ["system:serviceaccounts", f"system:serviceaccounts:{NAMESPACE}"],
            "resourceAttributes": {"namespace": namespace, "verb": verb, "resource": resource},
        },
    }
    return bool(api.request("POST", "/apis/authorization.k8s.io/v1/subjectaccessreviews", review)["status"]["allowed"])


def test_drivers_service_account_manages_executors_and_nothing_more(
    cluster: Cluster, drivers: dict[str, tuple[dict[str, Any], dict[str, Any]]]
) -> None:
    accounts = {pod["spec"]["serviceAccountName"] for _, pod in drivers.values()}
    assert accounts == {app["spec"]["driver"]["serviceAccount"] for app, _ in drivers.values()}
    (account,) = accounts
    for verb in ("create", "get", "list", "watch", "delete"):
        for resource in ("pods", "services", "configmaps"):
            assert allowed(cluster.api, account, NAMESPACE, verb, resource), (verb, resource)
    assert not allowed(cluster.api, account, NAMESPACE, "get", "secrets")
    assert not allowed(cluster.api, account, "default", "create", "pods")


# Objects the fixture changed: the webhook configurations, pointed at loopback.
REROUTED = {"MutatingWebhookConfiguration", "ValidatingWebhookConfiguration"}


# Kinds whose storage size is fixed once the object exists.
CLAIMING = {"StatefulSet", "PersistentVolumeClaim"}


def _claimed(obj: dict[str, Any]) -> list[str]:
    claims = obj["spec"].get("volumeClaimTemplates", []) if obj["kind"] == "StatefulSet" else [obj]
    return [claim["spec"]["resources"]["requests"]["storage"] for claim in claims]


def _claims_differ(api: Api, path: str, obj: dict[str, Any]) -> bool:
    try:
        live = api.get(path)
    except controlplane.ApiError as exc:
        if exc.status == 404:
            return False
        raise
    return _claimed({**live, "kind": obj["kind"]}) != _claimed(obj)


@pytest.mark.parametrize("variant", render.VARIANTS)
def test_server_side_apply_of_every_rendered_object(cluster: Cluster, renderer: render.Renderer, variant: str) -> None:
    """What the schema checks cannot see: admission, the webhooks' validation and the API server's own rules."""
    resources = controlplane.discover(cluster.api)
    failures = []
    for obj in renderer.stack(variant):
        path = controlplane.object_path(resources, obj, NAMESPACE)
        try:
            if obj["kind"] in REROUTED:
                # Applied over the fixture's loopback url, the chart's Service would make two targets: the chart's
                # version replaces the live one whole instead.
                version = cluster.api.get(path)["metadata"]["resourceVersion"]
                replacement = {**obj, "metadata": {**obj["metadata"], "resourceVersion": version}}
                cluster.api.request("PUT", f"{path}?dryRun=All", replacement)
            elif obj["kind"] in CLAIMING and _claims_differ(cluster.api, path, obj):
                # A StatefulSet's volume claims, and an unbound claim's size, cannot change once they exist (the
                # variant installed sized them for kind): the rendered one is checked as a new object of another name.
                renamed = {**obj, "metadata": {**obj["metadata"], "name": f"{obj['metadata']['name']}-{variant}"}}
                cluster.api.request("POST", f"{path.rsplit('/', 1)[0]}?dryRun=All", renamed)
            else:
                cluster.api.apply(path, obj, dry_run=True)
        except controlplane.ApiError as exc:
            failures.append(f"{obj['kind']} {obj['metadata']['name']}: {exc}")
    assert not failures, "\n".join(failures)
