"""Tier 2, step 6: the pipeline from the cryptolake release: the ingestor Deployment and the three SparkApplications,
bronze's driver killed mid-stream, and gold read back and compared with the reference (see test_pods_1_node.py for the
steps)."""

from __future__ import annotations

from contextlib import suppress

from core.layers import BRONZE_TABLE, SILVER_TABLE
from cryptolake import lake
from tests import reference
from tests.e2e.helpers import assert_gold_equals, bar_key, final_bars
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
    """Read back from MinIO, across the kill of bronze's driver (its fixture): every final bar equal to the
    reference, bronze every frame once, silver every trade once."""
    settings, trades = in_cluster.settings, in_cluster.trades
    expected = reference.bars(reference.from_synthetic(t) for t in trades)
    final = final_bars(expected, max(t.time_ms for t in trades) * 1000, WATERMARK_S)
    pipeline = workloads.Pods(cluster.api, node, f"app.kubernetes.io/instance={APP_RELEASE}")

    def gold_keys() -> set[tuple[str, str, int]]:
        with suppress(OSError, FileNotFoundError):
            return {bar_key(b) for b in lake.read_bars(settings).to_pylist()}
        return set()

    def written() -> tuple[int, ...]:
        return (rows(settings, BRONZE_TABLE), rows(settings, SILVER_TABLE), len(gold_keys()))

    workloads.wait_on_pods(
        "every final bar in gold", lambda: final <= gold_keys(), pipeline, PIPELINE_TIMEOUT, also=written
    )
    assert_gold_equals(lake.read_bars(settings).to_pylist(), expected, final)
    # The trades after the last final bar may still be on their way: every one in each layer, then exactly these.
    for table in (BRONZE_TABLE, SILVER_TABLE):
        workloads.wait_on_pods(
            f"every trade in {table}",
            lambda t=table: rows(settings, t) >= TRADES,
            pipeline,
            PIPELINE_TIMEOUT,
            also=written,
        )
    bronze = lake.read_table(settings, BRONZE_TABLE)
    assert sorted(bronze["value"].to_pylist()) == sorted(t.binance_frame().encode() for t in trades)
    silver = lake.read_table(settings, SILVER_TABLE).to_pylist()
    assert sorted((t["symbol"], int(t["trade_id"])) for t in silver) == sorted((t.symbol, t.trade_id) for t in trades)
