"""Tier 2, step 6: the pipeline from the cryptolake release: the ingestor Deployment and the three SparkApplications,
bronze's driver killed mid-stream, and gold read back and compared with the reference (see test_pods_1_node.py for the
steps)."""

from __future__ import annotations

import json
import queue
import signal
import subprocess
import sys
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from core import events
from core.layers import BRONZE_TABLE, SILVER_TABLE, gold_table
from cryptolake import cli, lake
from tests import reference
from tests.e2e.helpers import gold_mismatch
from tests.k8s import controlplane, render, workloads
from tests.k8s import node as nodes
from tests.k8s.conftest import (
    APP_RELEASE,
    HELD,
    IMAGE_TAG,
    TRADES,
    WATERMARK_S,
    Cluster,
    InCluster,
    Kill,
    frames_in_kafka,
    needs_root,
    rows,
)
from tests.k8s.controlplane import ControlPlaneError

pytestmark = needs_root

NAMESPACE = render.namespace()

# The pipeline's waits run as long as the venue sends, and then as long as the layers catch up: progress (rows
# written) keeps them going, its absence for a stall ends them.
PIPELINE_TIMEOUT = 1200


def test_ingestor_deployment_streams_the_venues_trades_into_kafka(
    cluster: Cluster, node: nodes.Node, in_cluster: InCluster
) -> None:
    """Ready (its /readyz: connected to the venue and to Kafka) as the kubelet probes it, and frames arrive."""
    (deployment,) = workloads.selected(cluster.api, "apps/v1/deployments", workloads.of(APP_RELEASE, "ingestor"))
    name = deployment["metadata"]["name"]
    ingestor = workloads.Pods(cluster.api, node, workloads.of(APP_RELEASE, "ingestor"))
    workloads.wait_on_pods(f"deployment {name} available", lambda: workloads.available(cluster.api, name), ingestor)
    workloads.wait_on_pods("frames in Kafka", lambda: frames_in_kafka(in_cluster.settings) > 0, ingestor)
    pods = ingestor.listed()
    running = [pod["spec"]["containers"][0]["image"] for pod in pods if pod["status"].get("phase") == "Running"]
    assert running == [f"cryptolake-ingestor:{IMAGE_TAG}"]


def test_a_killed_bronze_driver_is_resubmitted_by_the_operator(
    cluster: Cluster, node: nodes.Node, in_cluster: InCluster, bronze_killed: Kill
) -> None:
    """Mid-stream (bronze held some trades, the venue held back the rest), bronze's driver pod was deleted; the
    SparkApplication's restart policy brought a new driver, which goes on from the checkpoint with the trades the
    venue sent after."""
    assert 0 < bronze_killed.rows_at_kill <= HELD < TRADES
    assert bronze_killed.replacement["metadata"]["uid"] != bronze_killed.killed["metadata"]["uid"]
    settings = in_cluster.settings
    workloads.wait_on_pods(
        "the new driver to write the trades sent after the kill",
        lambda: rows(settings, BRONZE_TABLE) > HELD,
        workloads.Pods(cluster.api, node, workloads.of(APP_RELEASE, "bronze")),
        PIPELINE_TIMEOUT,
        also=lambda: rows(settings, BRONZE_TABLE),
    )


def test_gold_bars_from_the_cluster_equal_the_reference_and_every_trade_is_kept_once(
    cluster: Cluster, node: nodes.Node, in_cluster: InCluster, bronze_killed: Kill
) -> None:
    """Read back from MinIO with delta-rs, across the kill of bronze's driver (its fixture): every gold table exactly
    the reference's bars of every trade, bronze every frame once, silver every trade once."""
    settings, trades = in_cluster.settings, in_cluster.trades
    pipeline = workloads.Pods(cluster.api, node, f"app.kubernetes.io/instance={APP_RELEASE}")
    last = {"mismatch": "gold not read yet"}

    def gold_equal() -> bool:
        last["mismatch"] = gold_mismatch(settings, map(reference.from_synthetic, trades), WATERMARK_S) or ""
        return not last["mismatch"]

    def written() -> tuple[int, ...]:
        return (rows(settings, BRONZE_TABLE), rows(settings, SILVER_TABLE), rows(settings, gold_table("1m")))

    try:
        workloads.wait_on_pods(
            "every gold table equal to the reference", gold_equal, pipeline, PIPELINE_TIMEOUT, also=written
        )
    except ControlPlaneError as exc:
        raise AssertionError(f"{exc}\nlast difference: {last['mismatch']}") from None
    # Gold counts every trade: bronze and silver have them all by now.
    bronze = lake.read_table(settings, BRONZE_TABLE)
    assert sorted(bronze["value"].to_pylist()) == sorted(t.frame().encode() for t in trades)
    silver = lake.read_table(settings, SILVER_TABLE).to_pylist()
    assert sorted((t["symbol"], int(t["trade_id"])) for t in silver) == sorted((t.symbol, t.trade_id) for t in trades)


def test_cluster_status_and_logs_tell_what_runs(
    cluster: Cluster,
    in_cluster: InCluster,
    bronze_killed: Kill,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`cryptolake cluster status` and `cluster logs`, through the kubernetes client with the cluster's kube config as
    a user's kubectl has it, once the pipeline has caught up (the test before): every layer RUNNING with its driver
    pod Running, bronze's Kafka lag 0 on every partition, silver's and gold's newest trade the venue's newest, the
    bronze driver resubmitted after its kill; the layer's log lines merged and prefixed with their pod, and followed."""
    monkeypatch.setenv("KUBECONFIG", str(cluster.plane.kubeconfig))
    newest = datetime.fromtimestamp(max(t.time_ms for t in in_cluster.trades) / 1000, UTC)
    layers: dict[str, dict[str, Any]] = {}

    def caught_up() -> bool:
        assert cli.main(["cluster", "status", "--json", "--namespace", NAMESPACE]) == 0
        layers.update({row["layer"]: row for row in json.loads(capsys.readouterr().out)["layers"]})
        lag = (layers["bronze"]["batch"] or {}).get("kafka_lag") or {"none yet": 1}
        fresh = [layers[layer]["newest_event"] for layer in ("silver", "gold")]
        return set(lag.values()) == {0} and all(f and datetime.fromisoformat(f) == newest for f in fresh)

    try:
        controlplane.wait_for("the status to show the pipeline caught up", caught_up, 180, interval=5)
    except ControlPlaneError as exc:
        raise AssertionError(f"{exc}\nlast status: {json.dumps(layers, indent=1)}") from None
    for layer, row in layers.items():
        assert (row["state"], row["phase"]) == ("RUNNING", "Running"), (layer, row)
    assert all(p.startswith(f"{in_cluster.settings.kafka_topic}-") for p in layers["bronze"]["batch"]["kafka_lag"])
    # The operator counts a run per driver: bronze's second began when its first driver was deleted.
    assert layers["bronze"]["attempts"] > layers["silver"]["attempts"] >= 1, layers

    # The whole logs: the resubmitted driver's batch lines, each prefixed with its pod.
    assert cli.main(["cluster", "logs", "bronze", "--namespace", NAMESPACE]) == 0
    driver = layers["bronze"]["driver"]
    merged = capsys.readouterr().out.splitlines()
    batches = [line for line in merged if line.startswith(f"[{driver}] ") and f'"event": "{events.BATCH}"' in line]
    assert batches, merged[-20:]

    # Followed, as a user's terminal runs it, until Ctrl-C.
    follow = subprocess.Popen(
        [Path(sys.executable).parent / "cryptolake", "cluster", "logs", "bronze", "-f", "--namespace", NAMESPACE],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in follow.stdout or ()], daemon=True).start()
    try:
        first = lines.get(timeout=120)
        assert first.startswith(f"[{driver}] "), first
    finally:
        follow.send_signal(signal.SIGINT)
        code = follow.wait(30)
        rest = [lines.get() for _ in range(lines.qsize())][-10:]
        assert code == 130, rest  # what the command returns on Ctrl-C
