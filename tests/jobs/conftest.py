from collections.abc import Iterator

import pytest
from pyspark.sql import SparkSession

from core.jars import fetch, read_pins
from core.settings import Settings
from cryptolake.local.paths import LocalPaths


@pytest.fixture(scope="session")
def spark() -> Iterator[SparkSession]:
    """One local SparkSession for every transform test, with Delta Lake for the batch writers' tests; the jobs' own
    settings matter only where they run."""
    delta = fetch(LocalPaths.of(Settings()).spark_jars, [jar for jar in read_pins() if jar.group == "io.delta"])
    session = (
        SparkSession.builder.master("local[2]")
        .appName("cryptolake-tests")
        .config("spark.jars", ",".join(map(str, delta)))
        .config("spark.sql.extensions", "io.delta.sql.DeltaSparkSessionExtension")
        .config("spark.sql.catalog.spark_catalog", "org.apache.spark.sql.delta.catalog.DeltaCatalog")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.sql.shuffle.partitions", "2")
        .config("spark.databricks.delta.snapshotPartitions", "2")
        .config("spark.ui.enabled", "false")
        .getOrCreate()
    )
    yield session
    session.stop()
