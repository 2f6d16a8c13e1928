"""Tier 2, step 6: the pipeline from the cryptolake release: the ingestor Deployment and the three SparkApplications,
bronze's driver killed mid-stream, and gold read back and compared with the reference (see test_pods_1_node.py for the
steps)."""

from __future__ import annotations

from core.layers import BRONZE_TABLE, SILVER_TABLE, gold_table
from cryptolake import lake
from tests import reference
from tests.e2e.helpers import gold_mismatch
from tests.k8s import node as nodes
from tests.k8s import workloads
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
