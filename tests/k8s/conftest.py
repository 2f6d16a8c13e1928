"""Fixtures of the Kubernetes checks: the pinned tools, installed on first use (Go builds from the module proxy,
then cached under .cryptolake/tools/k8s), the charts rendered with them, the test control plane that
test_control_plane.py and the test_pods_*.py of tier 2 share, inside the cluster ranges' blackhole routes, and tier 2's
session, step by step: the node, the images, the smoke namespace, the services, the minio release and the pipeline.

Tier 2 needs root (``needs_root``): elsewhere its tests are skipped, with the reason in pytest's summary, but under CI
(CI=true) each of them fails instead, since a run that skipped them has not checked the deployment.
"""

from __future__ import annotations

import base64
import os
import signal
import socket
import sys
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import ExitStack, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyspark
import pytest
import yaml
from confluent_kafka import Consumer, TopicPartition

from core.layers import BRONZE_TABLE
from core.settings import Settings
from cryptolake import lake
from cryptolake.k8s import tools
from cryptolake.local import minio as minio_server
from cryptolake.local.kafka import Kafka, ensure_topic
from cryptolake.local.paths import REPO_ROOT, LocalPaths
from cryptolake.local.procs import free_port
from cryptolake.venue.synthetic import Trade, generate
from tests.k8s import addons, controlplane, images, render, sparkoperator, workloads
from tests.k8s import node as nodes
from tests.k8s.controlplane import ControlPlane

# A first run builds helm, kubeconform, helm-unittest, skaffold and the control plane from source: beyond the suite's
# per-test limit.
INSTALL_TIMEOUT = 1800
# Stands for whatever tag skaffold gives the images it builds; tier 2 builds and loads images of another tag.
TIER1_TAG = "tier1"


ROOT_REASON = "the cluster ranges' blackhole routes need root on Linux"
needs_root = pytest.mark.needs_root


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in item.path.parents:
            item.add_marker(pytest.mark.timeout(INSTALL_TIMEOUT))


def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.get_closest_marker("needs_root") is None or (sys.platform == "linux" and os.geteuid() == 0):
        return
    if os.environ.get("CI", "").lower() in ("true", "1"):
        pytest.fail(f"not run: {ROOT_REASON}, and CI must run it", pytrace=False)
    pytest.skip(f"{item.path.name}: {ROOT_REASON}")


@pytest.fixture(scope="session")
def pins() -> dict[str, tools.Pin]:
    return tools.read_pins()


@pytest.fixture(scope="session")
def tool(pins: dict[str, tools.Pin]) -> Callable[[str], Path]:
    """Binary of a pinned tool, built on first use."""

    def get(name: str) -> Path:
        return tools.binary(pins[name])

    return get


@pytest.fixture(scope="session")
def helm(tool: Callable[[str], Path]) -> Path:
    return tool("helm")


@pytest.fixture(scope="session")
def kube_version(pins: dict[str, tools.Pin]) -> str:
    """Kubernetes version of the kind node, without the v."""
    return pins["kubernetes"].version.removeprefix("v")


@pytest.fixture(scope="session")
def renderer(helm: Path, pins: dict[str, tools.Pin], kube_version: str) -> render.Renderer:
    return render.Renderer(helm, tools.operator_chart(pins), kube_version)


@pytest.fixture(scope="session")
def kubeconform(
    tool: Callable[[str], Path], pins: dict[str, tools.Pin], kube_version: str
) -> Callable[[list[Path]], dict[str, Any]]:
    """Strict validation against the kind node's Kubernetes schemas and the Spark Operator's CRDs."""
    binary = tool("kubeconform")
    schema_dirs = [tools.kubernetes_schemas(pins), tools.crd_schemas(pins)]

    def validate(files: list[Path]) -> dict[str, Any]:
        return render.kubeconform(binary, schema_dirs, kube_version, files)

    return validate


@pytest.fixture
def manifest_file(tmp_path: Path) -> Callable[[str, list[render.Manifest]], Path]:
    """Write manifests to a file of this test's temporary folder."""

    def write(name: str, docs: list[render.Manifest]) -> Path:
        path = tmp_path / f"{name}.yaml"
        path.write_text(yaml.safe_dump_all(docs, sort_keys=False))
        return path

    return write


@pytest.fixture(scope="session")
def network(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """This machine's one test node, what a killed run left deleted, then the cluster ranges dropped and the pods'
    bridge in one /24 of them."""
    nodes.install_packages({"nft": "nftables"})
    with controlplane.sole_node():
        left = controlplane.reclaim()
        # Earlier runs' folders: the network namespaces a killed run's pods held stay mounted there.
        current = tmp_path_factory.getbasetemp()
        for folder in current.parent.iterdir():
            if folder.is_dir() and not folder.is_symlink() and folder != current:
                nodes.unmount_under(folder)
        if left:
            warnings.warn(f"deleted what a killed test run left: {', '.join(left)}", stacklevel=1)
        with controlplane.blackholed(), controlplane.pod_network():
            yield


@pytest.fixture(scope="session")
def plane(
    network: None, tool: Callable[[str], Path], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ControlPlane]:
    folder = tmp_path_factory.mktemp("control-plane")
    with controlplane.running(tool("etcd"), tool("kube-apiserver"), folder, INSTALL_TIMEOUT) as running:
        yield running


@dataclass(frozen=True)
class Cluster:
    plane: ControlPlane
    helm: Path

    @property
    def api(self) -> controlplane.Api:
        return self.plane.api

    def helm_run(self, *args: str | Path) -> str:
        return render.run([self.helm, *args, "--kubeconfig", self.plane.kubeconfig])


@pytest.fixture(scope="session")
def cluster(
    plane: ControlPlane,
    helm: Path,
    tool: Callable[[str], Path],
    pins: dict[str, tools.Pin],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Cluster]:
    """The releases installed one after the other, as skaffold does; the Spark Operator's controller and webhook run
    (out of cluster) before anything after it is installed."""
    variables = render.skaffold_images(TIER1_TAG)
    spark_home = Path(pyspark.__file__).parent
    installed = Cluster(plane, helm)
    with ExitStack() as stack:
        for release in render.skaffold_config()["deploy"]["helm"]["releases"]:
            installed.helm_run(*render.helm_install(release, tools.operator_chart(pins), variables))
            if "remoteChart" in release:
                folder = tmp_path_factory.mktemp("spark-operator")
                stack.enter_context(
                    sparkoperator.running(
                        plane,
                        tool("spark-operator"),
                        release["name"],
                        render.namespace(),
                        spark_home,
                        folder,
                        INSTALL_TIMEOUT,
                    )
                )
        yield installed


# --- Tier 2, step 1: the node ---------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def node(
    plane: ControlPlane,
    tool: Callable[[str], Path],
    pins: dict[str, tools.Pin],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[nodes.Node]:
    with nodes.running(plane, tool, pins, tmp_path_factory.mktemp("node"), INSTALL_TIMEOUT) as running:
        yield running


# --- Step 2: the images, stand-ins for the official ones and the project's own built on them ----------------------

INGESTOR_DOCKERFILE = REPO_ROOT / "images" / "ingestor" / "Dockerfile"
# Images built here carry a tag of their own, apart from the tier-1 names the control plane's pods ask for.
IMAGE_TAG = "tier2"
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
        server.settimeout(workloads.STALL)
        yield server


@pytest.fixture(scope="session")
def smoke_namespace(plane: ControlPlane, controller_manager: controlplane.Process) -> str:
    """A namespace of the test's own pods, once the controller manager has given it its default service account."""
    namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": SMOKE_NAMESPACE}}
    plane.api.apply(f"/api/v1/namespaces/{SMOKE_NAMESPACE}", namespace)
    controlplane.wait_for(
        "the namespace's default service account",
        lambda: bool(plane.api.get(f"/api/v1/namespaces/{SMOKE_NAMESPACE}/serviceaccounts/default")),
        workloads.STALL,
    )
    return SMOKE_NAMESPACE


# --- Step 4: what a kind cluster runs beside the kubelet: scheduler, Services, cluster DNS -------------------------


@pytest.fixture(scope="session")
def cluster_services(
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


# --- Step 5: the minio release's pods: the server on its volume, its setup Job ------------------------------------

MINIO_RELEASE = "minio"


def setup_jobs(api: controlplane.Api) -> list[dict[str, Any]]:
    return workloads.selected(api, "batch/v1/jobs", workloads.of(MINIO_RELEASE, "setup"))


def provide_volumes(api: controlplane.Api, folder: Path) -> None:
    """What kind's local-path provisioner does for each unbound claim of the namespace: a folder of the node, open to
    any user as that provisioner leaves it, as a PersistentVolume bound to the claim."""
    for claim in api.get(workloads.namespaced("v1/persistentvolumeclaims"))["items"]:
        name = claim["metadata"]["name"]
        path = folder / name
        path.mkdir(parents=True, exist_ok=True)
        path.chmod(0o777)
        volume = {
            "apiVersion": "v1",
            "kind": "PersistentVolume",
            "metadata": {"name": f"{workloads.NAMESPACE}-{name}"},
            "spec": {
                "capacity": claim["spec"]["resources"]["requests"],
                "accessModes": claim["spec"]["accessModes"],
                "hostPath": {"path": str(path), "type": "Directory"},
                "claimRef": {"namespace": workloads.NAMESPACE, "name": name},
                "persistentVolumeReclaimPolicy": "Retain",
            },
        }
        api.apply(f"/api/v1/persistentvolumes/{workloads.NAMESPACE}-{name}", volume)


def wait_job_done(api: controlplane.Api, node: nodes.Node, job: str, what: str) -> None:
    pods = workloads.Pods(api, node, f"job-name={job}")
    workloads.wait_on_pods(what, lambda: workloads.job_done(api, job), pods)


@pytest.fixture(scope="session")
def minio(
    cluster: Cluster,
    node: nodes.Node,
    cluster_services: None,
    docker: images.Docker,
    tool: Callable[[str], Path],
    installed: None,
    tmp_path_factory: pytest.TempPathFactory,
) -> dict[str, Any]:
    """The minio release of tier 1 running: stand-ins of the images its Deployment and Job name, loaded; a volume for
    its claim; the server available and the setup Job complete. Returns the Job."""
    selector = f"app.kubernetes.io/instance={MINIO_RELEASE}"
    (deployment,) = workloads.selected(cluster.api, "apps/v1/deployments", selector)
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
    workloads.wait_on_pods(
        f"deployment {name} available",
        lambda: workloads.available(cluster.api, name),
        workloads.Pods(cluster.api, node, workloads.of(MINIO_RELEASE, "server")),
    )
    wait_job_done(cluster.api, node, job["metadata"]["name"], "the setup job to complete")
    return job


def lake_settings(api: controlplane.Api, settings: Settings) -> Settings:
    """``settings`` reading the release's lake from this machine: MinIO's pod address (Service addresses route only
    from pods), as the lake user of the release's Secret."""
    secret = api.get(workloads.namespaced("v1/secrets", f"{MINIO_RELEASE}-lake-user"))
    keys = {key: base64.b64decode(value).decode() for key, value in secret["data"].items()}
    (pod,) = [
        p
        for p in workloads.selected(api, "v1/pods", workloads.of(MINIO_RELEASE, "server"))
        if p["status"].get("phase") == "Running"
    ]
    return settings.with_(s3_endpoint=f"http://{pod['status']['podIP']}:9000", **keys)


# --- Step 6: the pipeline from the cryptolake release: the ingestor Deployment and the three SparkApplications ------

# The suite's Kafka broker stands in for the redpanda release, whose image cannot be had here; it listens on the
# node's address, which pods reach. The synthetic venue listens there too, in place of Binance.
SYMBOLS = ("BTC-USDT", "ETH-USDT")
TRADES = 2_400
# The venue sends the first HELD trades, then holds the rest back until bronze's driver has been killed: the kill
# falls mid-stream by construction, whatever the pace of the Spark pods' start on two busy cores.
HELD = TRADES // 2
# Trades per second of event time, which the venue keeps: 400 s of sending.
RATE = 6.0
SEED = 11
WATERMARK_S = 5
APP_RELEASE = "cryptolake"


@dataclass(frozen=True)
class InCluster:
    """The release's pipeline as this machine reads it: Kafka on the node's address, the lake at MinIO's pod; the
    venue, held after HELD trades until it gets SIGUSR1."""

    settings: Settings
    trades: list[Trade]
    venue: controlplane.Process


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
    venue_args += ["--hold-after", str(HELD)]
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
        yield InCluster(lake_settings(cluster.api, kafka_on_node), trades, venue)
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


def rows(settings: Settings, table: str) -> int:
    with suppress(OSError, FileNotFoundError):
        return int(lake.read_table(settings, table).num_rows)
    return 0


def layer_driver(api: controlplane.Api, layer: str) -> dict[str, Any] | None:
    """The layer's running driver pod, if one runs."""
    running = [
        pod
        for pod in workloads.selected(api, "v1/pods", f"{workloads.of(APP_RELEASE, layer)},spark-role=driver")
        if pod["status"].get("phase") == "Running" and not pod["metadata"].get("deletionTimestamp")
    ]
    return running[0] if running else None


@dataclass(frozen=True)
class Kill:
    """Bronze's driver pod before the kill and the one the operator brought after, and bronze's rows at the kill."""

    killed: dict[str, Any]
    replacement: dict[str, Any]
    rows_at_kill: int


@pytest.fixture(scope="session")
def bronze_killed(cluster: Cluster, node: nodes.Node, in_cluster: InCluster) -> Kill:
    """Bronze's driver pod deleted mid-stream: once bronze holds trades, and while the venue holds back all but the
    first HELD; the venue sends the rest once the pod is gone, and the operator's restart policy brings a new
    driver."""
    settings = in_cluster.settings
    bronze = workloads.Pods(cluster.api, node, workloads.of(APP_RELEASE, "bronze"))

    def running_with_trades() -> bool:
        return layer_driver(cluster.api, "bronze") is not None and rows(settings, BRONZE_TABLE) > 0

    def stream() -> tuple[int, int]:
        return frames_in_kafka(settings), rows(settings, BRONZE_TABLE)

    workloads.wait_on_pods("bronze's driver to hold trades", running_with_trades, bronze, also=stream)
    before = layer_driver(cluster.api, "bronze")
    assert before is not None
    rows_at_kill = rows(settings, BRONZE_TABLE)
    path = workloads.namespaced("v1/pods", before["metadata"]["name"])
    try:
        cluster.api.request("DELETE", f"{path}?gracePeriodSeconds=0")
    finally:
        in_cluster.venue.popen.send_signal(signal.SIGUSR1)

    def replaced() -> dict[str, Any] | None:
        after = layer_driver(cluster.api, "bronze")
        return after if after is not None and after["metadata"]["uid"] != before["metadata"]["uid"] else None

    workloads.wait_on_pods("a new bronze driver", lambda: replaced() is not None, bronze)
    after = replaced()
    assert after is not None
    return Kill(before, after, rows_at_kill)
