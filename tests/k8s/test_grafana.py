"""The Grafana dashboard the chart ships reads metrics that exist, under the names their code gives them."""

from __future__ import annotations

import json
import re

from cryptolake.local.paths import REPO_ROOT
from ingestion.metrics import DEFINITIONS, PREFIX

DASHBOARD = REPO_ROOT / "charts/cryptolake/files/grafana-dashboard.json"


def _expressions() -> list[str]:
    dashboard = json.loads(DASHBOARD.read_text())
    return [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]


def test_every_ingestor_metric_of_the_dashboard_is_one_the_ingestor_serves() -> None:
    names = set(re.findall(rf"{PREFIX}\w+", " ".join(_expressions())))
    histograms = {f"{PREFIX}{name}_bucket" for name, (kind, _, _) in DEFINITIONS.items() if kind == "histogram"}
    served = {PREFIX + name for name in DEFINITIONS} | histograms
    assert names and names <= served, names - served


def test_the_spark_panels_read_the_jobs_metrics_namespace() -> None:
    from core.settings import Settings
    from jobs.session import METRICS_NAMESPACE, spark_conf  # pyspark: imported only by the tests that need it

    assert spark_conf(Settings())["spark.metrics.namespace"] == METRICS_NAMESPACE
    spark = [expr for expr in _expressions() if "spark_streaming" in expr]
    assert len(spark) == 5  # input rate, processing rate, batch duration, state rows, watermark lag
    assert all(f"metrics_{METRICS_NAMESPACE}_driver_spark_streaming_" in expr for expr in spark)
