"""SparkSession setup shared by every layer: S3A on MinIO, the pinned jars, and streaming defaults."""

from __future__ import annotations

from pathlib import Path

from pyspark.sql import SparkSession

from core.jars import read_pins
from core.settings import Settings, duration_seconds

# Spark's own logging: warnings and errors, one JSON object a line (docs/operations.md, "Logs").
LOG4J2_CONFIG = Path(__file__).with_name("spark-log4j2.properties")
METRICS_NAMESPACE = "cryptolake"
METRICS_PATH = "/metrics/prometheus"
WEEK_SECONDS = 7 * 24 * 3600


def spark_conf(settings: Settings) -> dict[str, str]:
    """Spark configuration derived from the settings; the one place a Spark or S3A key is spelled."""
    conf = {
        # S3A against MinIO: path-style URLs, no virtual-host bucket DNS, plain HTTP allowed by the endpoint URL.
        "spark.hadoop.fs.s3a.impl": "org.apache.hadoop.fs.s3a.S3AFileSystem",
        "spark.hadoop.fs.s3a.endpoint": settings.s3_endpoint,
        "spark.hadoop.fs.s3a.endpoint.region": settings.s3_region,
        "spark.hadoop.fs.s3a.path.style.access": "true",
        "spark.hadoop.fs.s3a.connection.ssl.enabled": str(settings.s3_endpoint.startswith("https")).lower(),
        "spark.hadoop.fs.s3a.aws.credentials.provider": "org.apache.hadoop.fs.s3a.SimpleAWSCredentialsProvider",
        # Every table is a Delta Lake table: Delta's SQL (MERGE, OPTIMIZE, VACUUM, DESCRIBE HISTORY) and catalog.
        "spark.sql.extensions": "io.delta.sql.DeltaSparkSessionExtension",
        "spark.sql.catalog.spark_catalog": "org.apache.spark.sql.delta.catalog.DeltaCatalog",
        # Partitions of the job that rebuilds a table's state from its log (at every commit, and for every batch a
        # Delta source plans): Delta's default, 50, is 50 tasks a time on a machine of a few cores.
        "spark.databricks.delta.snapshotPartitions": str(settings.shuffle_partitions),
        # Compaction after the writes that leave a partition with many small files, in the writer's thread: a batch
        # writes a file or two, and a MERGE rewrites the few files it touches.
        "spark.databricks.delta.autoCompact.enabled": "true",
        # What a new table keeps: versions in its log (history, time travel), and files a newer version replaced.
        "spark.databricks.delta.properties.defaults.logRetentionDuration": f"interval {settings.lake_log_retention}",
        "spark.databricks.delta.properties.defaults.deletedFileRetentionDuration": (
            f"interval {settings.lake_file_retention}"
        ),
        # Delta refuses to vacuum files younger than a week unless told the retention setting is meant.
        "spark.databricks.delta.retentionDurationCheck.enabled": str(
            duration_seconds(settings.lake_file_retention) >= WEEK_SECONDS
        ).lower(),
        "spark.sql.shuffle.partitions": str(settings.shuffle_partitions),
        # A task writes each partition folder (a day, a symbol) through a writer of its own instead of sorting its rows
        # by folder first (bench/results/tuning/README.md). Past this many folders in one task (gold's symbols), Spark
        # sorts the rest; each open writer holds its buffers.
        "spark.sql.maxConcurrentOutputFileWriters": "16",
        "spark.sql.session.timeZone": "UTC",
        # Standard Parquet timestamps (not the legacy INT96), so pyarrow and other readers see UTC instants.
        "spark.sql.parquet.outputTimestampType": "TIMESTAMP_MICROS",
        "spark.ui.showConsoleProgress": "false",
        # The UI shows the layers; it does not stop their jobs or stages (a click would fail a streaming batch).
        "spark.ui.killEnabled": "false",
        # Streaming metrics (input and processing rate, batch duration, state rows, watermark) in Prometheus's text
        # format at the driver UI's /metrics/prometheus, under one namespace whatever the run's application id.
        "spark.sql.streaming.metricsEnabled": "true",
        "spark.metrics.namespace": METRICS_NAMESPACE,
        "spark.metrics.conf.*.sink.prometheusServlet.class": "org.apache.spark.metrics.sink.PrometheusServlet",
        "spark.metrics.conf.*.sink.prometheusServlet.path": METRICS_PATH,
        "spark.ui.prometheus.enabled": "true",  # and the executors' at /metrics/executors/prometheus
        # Read where PySpark launches the driver's JVM (local mode); in Kubernetes the JVM is up before this conf,
        # and the chart gives the pods the same file as their javaOptions.
        "spark.driver.extraJavaOptions": f"-Dlog4j2.configurationFile={LOG4J2_CONFIG}",
    }
    if settings.spark_jars_dir:
        jars_dir = Path(settings.spark_jars_dir)
        conf["spark.jars"] = ",".join(str(jars_dir / jar.filename) for jar in read_pins())
    return conf


def build_session(settings: Settings, app_name: str) -> SparkSession:
    builder = SparkSession.builder.appName(app_name)
    if settings.spark_master:
        builder = builder.master(settings.spark_master)
    for key, value in spark_conf(settings).items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    # The S3 keys go to the running JVM, not through the builder: PySpark puts a builder's settings on the command line
    # of the driver it launches (local mode), where anyone's `ps` reads them. Every S3A client and the configuration
    # Spark ships to tasks start from this one.
    hadoop = spark.sparkContext._jsc.hadoopConfiguration()
    hadoop.set("fs.s3a.access.key", settings.s3_access_key)
    hadoop.set("fs.s3a.secret.key", settings.s3_secret_key)
    # Where the driver's JVM did not start with LOG4J2_CONFIG (Kubernetes), at least no INFO lines.
    spark.sparkContext.setLogLevel("WARN")
    return spark
