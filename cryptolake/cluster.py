"""The ``cluster`` subcommands of ``cryptolake``: the deployment seen through the Kubernetes API, as kubectl sees it
(the current kube context, or ``--context``).

``cluster status`` gives each layer's SparkApplication (state, attempts, driver pod), the newest batch line its driver
logged, bronze's Kafka lag per partition and how old silver's and gold's newest trade is; ``cluster logs LAYER``
merges the logs of the layer's pods (driver and executors, or the ingestor's), each line prefixed with its pod, as
``kubectl logs -l ... --prefix`` does, and ``-f`` follows them, new pods included.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

import urllib3
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException
from kubernetes.config.config_exception import ConfigException

from core import events, exits
from core.layers import LAYERS
from core.settings import Settings

NAMESPACE = "cryptolake"  # the namespace docs/kubernetes.md and skaffold.yaml deploy to
COMPONENT = "app.kubernetes.io/component"  # the charts' label naming a pod's layer, or the ingestor
SPARK_APPLICATIONS = ("sparkoperator.k8s.io", "v1beta2", "sparkapplications")
DRIVER_CONTAINER = "spark-kubernetes-driver"
# A driver logs a batch line per trigger and little else: its newest few hundred lines hold its newest batches.
TAIL_LINES = 500
FOLLOW_POLL_SECONDS = 5.0  # how often `logs -f` looks for new pods (a restarted driver, new executors)
INGESTOR = "ingestor"


class ClusterError(RuntimeError):
    """The cluster could not be reached, or refused what was asked, in words a user can act on."""


@dataclass
class LayerStatus:
    layer: str
    application: str | None = None
    state: str = "NOT FOUND"
    attempts: int = 0  # the operator's execution attempts: 1 at first, one more per resubmission
    driver: str | None = None
    phase: str | None = None  # the driver pod's
    batch: dict[str, Any] | None = None  # the newest batch line, as the driver logged it
    newest_event: str | None = None  # the newest trade time the layer wrote, among the lines read
    age_seconds: float | None = None  # how old that trade is now


@dataclass
class Status:
    namespace: str
    layers: list[LayerStatus] = field(default_factory=list)
    ingestor_ready: str = "0/0"  # ready/desired replicas of its Deployment


def log_records(lines: Iterable[str]) -> Iterator[dict[str, Any]]:
    """The JSON lines among a pod's log lines (Spark's own lines and anything else are not the project's)."""
    for line in lines:
        if line.startswith("{"):
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if isinstance(record, dict):
                yield record


def newest_batch(lines: Iterable[str]) -> tuple[dict[str, Any] | None, str | None]:
    """The newest batch line, and the newest trade time any batch line names (a batch with no rows names none)."""
    batch, newest = None, None
    for record in log_records(lines):
        if record.get("event") != events.BATCH:
            continue
        batch = record
        if record.get("newest_event"):
            newest = max(newest or "", str(record["newest_event"]))
    return batch, newest


def _age(newest: str | None, now: datetime) -> float | None:
    if newest is None:
        return None
    when = datetime.fromisoformat(newest)
    return (now - (when if when.tzinfo else when.replace(tzinfo=UTC))).total_seconds()


class Cluster:
    """The API clients of one kube context."""

    def __init__(self, context: str | None = None) -> None:
        # Read now, as kubectl does: the client reads KUBECONFIG once, when it is imported.
        files = os.environ.get("KUBECONFIG") or "~/.kube/config"
        try:
            api = config.new_client_from_config(files, context=context)  # type: ignore[no-untyped-call]  # unannotated
        except (ConfigException, OSError) as exc:
            raise ClusterError(f"no usable kube config in {files} ({exc}); KUBECONFIG names others") from exc
        self.core = client.CoreV1Api(api)
        self.apps = client.AppsV1Api(api)
        self.custom = client.CustomObjectsApi(api)
        self.server = api.configuration.host

    def call(self, what: str, method: Any, *args: Any, **kwargs: Any) -> Any:
        """One API call, its failure as a ClusterError saying what was asked of which server."""
        try:
            return method(*args, **kwargs)
        except ApiException as exc:
            raise ClusterError(f"{what}: the API server said {exc.status} {exc.reason}") from exc
        except urllib3.exceptions.HTTPError as exc:
            raise ClusterError(f"{what}: cannot reach the API server at {self.server} ({exc})") from exc

    def pods(self, namespace: str, component: str) -> list[Any]:
        listed = self.call(
            f"list the {component} pods in {namespace}",
            self.core.list_namespaced_pod,
            namespace,
            label_selector=f"{COMPONENT}={component}",
        )
        # The driver first, then executors, oldest first within each.
        return sorted(
            listed.items,
            key=lambda pod: (
                (pod.metadata.labels or {}).get("spark-role") != "driver",
                str(pod.metadata.creation_timestamp),
            ),
        )

    def log_lines(self, namespace: str, pod: str, container: str | None, **options: Any) -> list[str]:
        text = self.call(
            f"read pod {pod}'s log", self.core.read_namespaced_pod_log, pod, namespace, container=container, **options
        )
        return str(text).splitlines()


def status(cluster: Cluster, namespace: str, now: datetime) -> Status:
    """Each layer's SparkApplication and newest batch, and the ingestor's readiness."""
    group, version, plural = SPARK_APPLICATIONS
    listed = cluster.call(
        f"list the SparkApplications in {namespace}",
        cluster.custom.list_namespaced_custom_object,
        group,
        version,
        namespace,
        plural,
    )
    by_layer = {(app["metadata"].get("labels") or {}).get(COMPONENT): app for app in listed.get("items", [])}
    result = Status(namespace)
    for layer in LAYERS:
        row = LayerStatus(layer)
        app = by_layer.get(layer)
        if app is not None:
            state = app.get("status") or {}
            row.application = app["metadata"]["name"]
            row.state = (state.get("applicationState") or {}).get("state") or "NEW"
            row.attempts = int(state.get("executionAttempts") or 0)
            row.driver = (state.get("driverInfo") or {}).get("podName")
        if row.driver is not None:
            try:
                pod = cluster.call(f"read pod {row.driver}", cluster.core.read_namespaced_pod, row.driver, namespace)
                row.phase = pod.status.phase
                lines = cluster.log_lines(namespace, row.driver, DRIVER_CONTAINER, tail_lines=TAIL_LINES)
            except ClusterError as exc:
                # A driver pod between attempts: gone, or not started yet. The application's state says which.
                row.phase = row.phase or f"unreadable: {exc}"
                lines = []
            row.batch, row.newest_event = newest_batch(lines)
            row.age_seconds = _age(row.newest_event, now)
        result.layers.append(row)
    deployments = cluster.call(
        f"list the ingestor Deployment in {namespace}",
        cluster.apps.list_namespaced_deployment,
        namespace,
        label_selector=f"{COMPONENT}={INGESTOR}",
    ).items
    ready = sum(d.status.ready_replicas or 0 for d in deployments)
    result.ingestor_ready = f"{ready}/{sum(d.spec.replicas or 0 for d in deployments)}"
    return result


def render(result: Status) -> str:
    """The status as lines for a terminal."""
    lines = [f"namespace {result.namespace}"]
    for row in result.layers:
        driver = f"driver {row.driver} ({row.phase})" if row.driver else "no driver"
        lines.append(f"{row.layer:<7} {row.state:<10} attempts {row.attempts}  {driver}")
        batch = row.batch
        if batch is None:
            lines.append("        no batch line yet")
            continue
        written = "" if batch.get("output_rows") is None else f", {batch['output_rows']} written"
        took = "" if batch.get("duration_ms") is None else f" in {batch['duration_ms'] / 1000:.1f} s"
        read = f"{batch.get('input_rows')} read{written}{took}"
        lines.append(f"        batch {batch.get('batch')} at {batch.get('ts')}: {read}")
        lag = batch.get("kafka_lag")
        if lag:
            parts = ", ".join(f"{partition} {records}" for partition, records in sorted(lag.items()))
            lines.append(f"        Kafka lag: {sum(lag.values())} records ({parts})")
        if row.newest_event is not None and row.age_seconds is not None:
            lines.append(f"        newest trade {row.newest_event}, {row.age_seconds:.0f} s old")
    lines.append(f"ingestor {result.ingestor_ready} ready")
    return "\n".join(lines)


def follow(cluster: Cluster, namespace: str, component: str, out: Any = sys.stdout) -> None:
    """Print the component's running pods' new log lines as they come, prefixed, until Ctrl-C: the last 10 lines of
    the pods running at the start (kubectl's default with a selector), every line of pods that start later (a
    resubmitted driver, new executors), and a stream the API server ends is opened again where it stopped."""
    lock = threading.Lock()
    stopped = threading.Event()
    streams: dict[str, tuple[threading.Thread, Any]] = {}  # per pod followed: its thread and its open response
    ended: dict[str, float] = {}
    refused: set[str] = set()

    def stream(pod: str, response: Any) -> None:
        try:
            for raw in response.stream():
                for line in raw.decode(errors="replace").splitlines():
                    with lock:
                        if stopped.is_set():
                            return
                        print(f"[{pod}] {line}", file=out, flush=True)
        except (OSError, urllib3.exceptions.HTTPError):
            pass  # the pod ended, or the stream was shut: the next look at the pods decides
        with lock:
            streams.pop(pod, None)
            ended[pod] = time.monotonic()

    first = True
    try:
        while True:
            for pod in cluster.pods(namespace, component):
                name = pod.metadata.name
                if name in streams or pod.status.phase != "Running":
                    continue
                try:
                    response: Any = cluster.call(
                        f"follow pod {name}'s log",
                        cluster.core.read_namespaced_pod_log,
                        name,
                        namespace,
                        container=pod.spec.containers[0].name,
                        follow=True,
                        tail_lines=10 if first else None,
                        since_seconds=math.ceil(time.monotonic() - ended[name]) + 1 if name in ended else None,
                        _preload_content=False,
                    )
                except ClusterError as exc:
                    # Running but its log not served yet (its kubelet catching up): said once, tried again next look.
                    if name not in refused:
                        refused.add(name)
                        print(f"error: {exc}; trying again", file=sys.stderr)
                    continue
                thread = threading.Thread(target=stream, args=(name, response), daemon=True)
                with lock:
                    streams[name] = (thread, response)
                thread.start()
            first = False
            time.sleep(FOLLOW_POLL_SECONDS)
    finally:
        # Every stream ends before this returns: a thread still reading a socket or writing to stdout while the
        # interpreter shuts down can abort it.
        with lock:
            stopped.set()
            open_streams = list(streams.values())
        for thread, response in open_streams:
            response.shutdown()
            thread.join(5)


def _in_order(stamp: str) -> str:
    """An RFC 3339 time as the kubelet writes it (fractions of varying length, trailing zeros cut) made comparable
    as text: the fraction padded to nanoseconds."""
    head, _, fraction = stamp.rstrip("Z").partition(".")
    return f"{head}.{fraction.ljust(9, '0')}"


def merged_logs(cluster: Cluster, namespace: str, component: str) -> list[str]:
    """Every pod's log of the component, merged in time order, each line prefixed with its pod."""
    timed = []
    for pod in cluster.pods(namespace, component):
        name = pod.metadata.name
        for line in cluster.log_lines(namespace, name, pod.spec.containers[0].name, timestamps=True):
            stamp, _, text = line.partition(" ")
            timed.append((_in_order(stamp), name, text))
    return [f"[{name}] {text}" for _, name, text in sorted(timed, key=lambda entry: entry[0])]


def cmd_status(_settings: Settings, args: argparse.Namespace) -> int:
    try:
        result = status(Cluster(args.context), args.namespace, datetime.now(UTC))
    except ClusterError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exits.FAILED
    print(json.dumps(asdict(result)) if args.json else render(result))
    return exits.OK


def cmd_logs(_settings: Settings, args: argparse.Namespace) -> int:
    try:
        cluster = Cluster(args.context)
        if args.follow:
            follow(cluster, args.namespace, args.component)
        else:
            lines = merged_logs(cluster, args.namespace, args.component)
            print("\n".join(lines) if lines else f"no {args.component} pod in {args.namespace}")
    except ClusterError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exits.FAILED
    return exits.OK


def add_commands(commands: Any) -> None:
    """Register ``cluster status`` and ``cluster logs`` on the ``cryptolake`` command's subparsers."""
    cluster = commands.add_parser("cluster", help="the deployment in Kubernetes, through the current kube context")
    subcommands = cluster.add_subparsers(dest="cluster_command", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--namespace", "-n", default=NAMESPACE, help=f"the release's namespace (default {NAMESPACE})")
    common.add_argument("--context", help="a kube context other than the current one")
    state = subcommands.add_parser(
        "status", parents=[common], help="each layer's SparkApplication, driver, newest batch, Kafka lag, freshness"
    )
    state.add_argument("--json", action="store_true", help="one JSON object")
    state.set_defaults(func=cmd_status)
    logs = subcommands.add_parser(
        "logs", parents=[common], help="a layer's driver and executors' logs (or the ingestor's), merged and prefixed"
    )
    logs.add_argument("component", choices=(*LAYERS, INGESTOR), help="a layer, or the ingestor")
    logs.add_argument("--follow", "-f", action="store_true", help="follow them, new pods included, until Ctrl-C")
    logs.set_defaults(func=cmd_logs)
