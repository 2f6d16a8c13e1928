"""What every layer's job does around its queries: settings, session, progress logs, exit codes, shutdown."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pyspark.errors import StreamingQueryException
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.streaming.listener import StreamingQueryListener
from pyspark.sql.streaming.query import StreamingQuery

from core import events, exits, logs
from core.layers import RESUME_FILE
from core.settings import Settings, SettingsError, duration_seconds
from core.throttle import Throttle
from jobs.lifecycle import Maintenance
from jobs.session import METRICS_PATH, build_session

log = logging.getLogger("jobs")

StartQueries = Callable[[SparkSession, Settings], list[StreamingQuery]]
WriteBatch = Callable[[DataFrame, int], None]
TableUri = Callable[[str], str]  # a lake table's name -> its URI (Settings.table_uri; a folder in tests)

# The observed metric counting the rows a query hands its sink (bronze's); writers of their own count in BatchCounts.
WRITTEN_METRIC = "written"
BEHIND_LOG_SECONDS = 60.0  # at most one "falling behind" line per query this often
STOP_WAIT_SECONDS = 30.0  # how long a stop waits for the running batches to end


def batch_summary(progress: dict[str, Any]) -> dict[str, Any]:
    """The fields of one micro-batch's progress that tell a layer's story, flattened for one log line."""
    state = progress.get("stateOperators") or []
    output_rows = ((progress.get("observedMetrics") or {}).get(WRITTEN_METRIC) or {}).get("rows")
    summary = {
        "query": progress.get("name"),
        "batch": progress.get("batchId"),
        "input_rows": progress.get("numInputRows", 0),
        "output_rows": output_rows,
        "rows_per_s": round(progress.get("processedRowsPerSecond") or 0.0, 1),
        "duration_ms": (progress.get("durationMs") or {}).get("triggerExecution"),
        "watermark": (progress.get("eventTime") or {}).get("watermark"),
        "late_rows": sum(op.get("numRowsDroppedByWatermark", 0) for op in state),
        "state_rows": sum(op.get("numRowsTotal", 0) for op in state),
    }
    lag = kafka_lag(progress)
    if lag is not None:
        summary["kafka_lag"] = lag
    return summary


def kafka_lag(progress: dict[str, Any]) -> dict[str, int] | None:
    """Per Kafka partition (``topic-partition``), the records Kafka held beyond the batch's end when the batch was
    planned; None for a batch that reads no Kafka. A Kafka source's offsets are ``{topic: {partition: offset}}``, a
    Delta source's hold no such mapping."""
    lag = {}
    for source in progress.get("sources") or []:
        latest, end = source.get("latestOffset"), source.get("endOffset")
        if not isinstance(latest, dict) or not isinstance(end, dict):
            continue
        for topic, partitions in latest.items():
            ends = end.get(topic)
            if not isinstance(partitions, dict) or not isinstance(ends, dict):
                continue
            for partition, offset in partitions.items():
                if isinstance(offset, int) and isinstance(ends.get(partition), int):
                    lag[f"{topic}-{partition}"] = offset - ends[partition]
    return lag or None


def utc_text(when: datetime | None) -> str | None:
    """A time collected from Spark (naive, in this process's local zone) as ISO 8601 in UTC, for a batch line."""
    return None if when is None else when.astimezone(UTC).isoformat()


class BatchCounts:
    """The rows a layer's own batch writer wrote (Spark's progress counts none for ``foreachBatch``), and the newest
    event time among them, kept from the writer's call until the batch's progress line takes them."""

    def __init__(self) -> None:
        self._counts: dict[tuple[str, int], dict[str, object]] = {}
        self._lock = threading.Lock()

    def record(self, query: str, batch_id: int, **counts: object) -> None:
        with self._lock:
            self._counts[(query, batch_id)] = counts

    def take(self, query: str, batch_id: int) -> dict[str, object]:
        with self._lock:
            return self._counts.pop((query, batch_id), {})


COUNTS = BatchCounts()


def write_table(rows: DataFrame, settings: Settings, query: str, table: str, *partition_by: str) -> StreamingQuery:
    """Start ``query``: append ``rows`` to the Delta ``table`` of the lake, with its checkpoint named after it.

    Delta's streaming sink commits each batch once, by the query's id and batch id, whatever the restarts."""
    return (
        rows.observe(WRITTEN_METRIC, F.count(F.lit(1)).alias("rows"))
        .writeStream.queryName(query)
        .format("delta")
        .outputMode("append")
        .option("checkpointLocation", settings.checkpoint_uri(query))
        .partitionBy(*partition_by)
        .trigger(processingTime=settings.trigger_interval)
        .start(settings.table_uri(table))
    )


def read_table(spark: SparkSession, uri: str) -> DataFrame:
    """The rows each new version of the Delta table at ``uri`` adds, as a stream.

    The upstream's expiry deletes whole days (``jobs/lifecycle.py``), which a Delta source refuses by default: those
    deletions are skipped, and compactions add no rows."""
    return spark.readStream.format("delta").option("ignoreDeletes", "true").load(uri)


def write_batches(rows: DataFrame, settings: Settings, query: str, write: WriteBatch) -> StreamingQuery:
    """Start ``query``: hand each micro-batch of ``rows`` to ``write``, which writes it to the lake with Delta's
    idempotent writes (``txn_options``), so a batch run again after a failure changes nothing it wrote before."""
    return (
        rows.writeStream.queryName(query)
        .foreachBatch(write)
        .option("checkpointLocation", settings.checkpoint_uri(query))
        .trigger(processingTime=settings.trigger_interval)
        .start()
    )


def txn_app_id(query: str) -> str:
    """The application id under which ``query``'s writes are idempotent in every table it writes."""
    return f"cryptolake-{query}"


def failure_text(exc: BaseException) -> str:
    """The messages of ``exc`` and of the errors that caused it, a line each: a sink's failure wraps its source's (a
    Delta write fails with Kafka's data loss as its cause). PySpark keeps a JVM error's cause in ``_cause``."""
    texts: list[str] = []
    error: BaseException | None = exc
    while error is not None and len(texts) < 20:
        texts.append(str(error))
        error = getattr(error, "_cause", None) or error.__cause__
    return "\n".join(texts)


def what_to_do(error: str) -> str | None:
    """Advice for failures an operator must act on, by what Spark's message says."""
    if "KAFKA_DATA_LOSS" in error or "Some data may have been lost" in error:
        return (
            "Kafka no longer holds offsets bronze has not read yet: the topic was recreated, or retention deleted "
            "records before bronze read them. Nothing was skipped: bronze stopped before the gap. Two ways on: "
            "(1) `cryptolake resume bronze` keeps every table and has bronze go on from the earliest offsets Kafka "
            "still holds, past those it holds already; it names the gap per partition before it changes anything, "
            "moves bronze's checkpoint aside, and loses only the records in the gap, which Kafka no longer has; "
            "silver and gold go on. (2) `cryptolake reset bronze`, then `silver` and `gold` (each deletes a layer's "
            "tables and checkpoint together) rebuilds the lake from Kafka's earliest offsets, and so loses the lake's "
            "history older than what Kafka holds; copy the bucket's tables first to keep it. Deleting a checkpoint "
            "alone does not help: a layer refuses to start on tables its checkpoint does not know."
        )
    return None


class ProgressLogger(StreamingQueryListener):
    """A line per batch, and one of ours, throttled, when batches take longer than the trigger interval (Spark's own
    warning, one per slow batch, is silenced in spark-log4j2.properties)."""

    def __init__(self, trigger_seconds: float, throttle: Throttle | None = None, counts: BatchCounts = COUNTS) -> None:
        super().__init__()
        self.trigger_ms = trigger_seconds * 1000
        self._behind = throttle or Throttle(BEHIND_LOG_SECONDS)
        self._counts = counts

    def onQueryStarted(self, event: Any) -> None:  # noqa: N802 - Spark's listener API
        log.info(events.QUERY_STARTED, extra=logs.fields(query=event.name, run_id=str(event.runId)))

    def onQueryProgress(self, event: Any) -> None:  # noqa: N802
        summary = batch_summary(json.loads(event.progress.json))
        summary.update(self._counts.take(str(summary["query"]), summary["batch"]))
        log.info(events.BATCH, extra=logs.fields(**summary))
        duration_ms = summary["duration_ms"]
        if duration_ms is None or duration_ms <= self.trigger_ms:
            return
        held = self._behind.allow(str(summary["query"]))
        if held is not None:
            log.warning(
                "falling behind: batches take longer than the trigger interval",
                extra=logs.fields(
                    query=summary["query"],
                    duration_ms=duration_ms,
                    trigger_ms=round(self.trigger_ms),
                    similar_held_back=held,
                ),
            )

    def onQueryIdle(self, event: Any) -> None:  # noqa: N802
        """Idle triggers carry no batch; the next batch line says all."""

    def onQueryTerminated(self, event: Any) -> None:  # noqa: N802
        log.info("query terminated", extra=logs.fields(run_id=str(event.runId), error=event.exception))


def _any_file(spark: SparkSession, pattern: str) -> bool:
    """Whether a file matches the Hadoop glob ``pattern`` (an S3A URI)."""
    jvm = spark.sparkContext._jvm
    assert jvm is not None
    path = jvm.org.apache.hadoop.fs.Path(pattern)
    return bool(path.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration()).globStatus(path))


def read_text(spark: SparkSession, uri: str) -> str | None:
    """The text of the file at ``uri`` (an S3A URI), None if there is none."""
    if not _any_file(spark, uri):
        return None
    row = spark.read.text(uri, wholetext=True).first()
    return "" if row is None else str(row[0])


def has_batches(spark: SparkSession, checkpoint: str) -> bool:
    """Whether the query of ``checkpoint`` has planned a batch: from then on it goes on from its own offsets."""
    return _any_file(spark, f"{checkpoint}/offsets/[0-9]*")


def has_commit(spark: SparkSession, uri: str) -> bool:
    """Whether the Delta table at ``uri`` has a commit: a commit file, not the ``_delta_log`` folder, which the writer
    creates before its first commit (a source started in between fails: "Table schema is not set")."""
    return _any_file(spark, f"{uri}/_delta_log/[0-9]*.json")


def wait_for_table(spark: SparkSession, uri: str, stop: threading.Event, poll_seconds: float = 5.0) -> None:
    """Block until the Delta table at ``uri`` has its first commit (a Delta source needs one), or ``stop``."""
    waited = False
    while not has_commit(spark, uri) and not stop.is_set():
        if not waited:
            log.info(events.WAITING_FOR_UPSTREAM, extra=logs.fields(table=uri))
            waited = True
        stop.wait(poll_seconds)


class StateMismatchError(Exception):
    """A query's checkpoint and the tables it writes do not belong together; the message says what to do."""


def check_state(spark: SparkSession, query: str, checkpoint: str, tables: Mapping[str, str]) -> None:
    """Refuse to start ``query`` where its ``checkpoint`` and its ``tables`` (name: URI) disagree, which a start would
    not survive whole: a table with commits and a checkpoint without a batch would read the input again from the
    start and write it twice (a checkpoint deleted alone); a checkpoint with finished batches and none of its tables
    would go on from where it stood and never write what came before (tables deleted alone). A kill between a batch's
    writes and its checkpoint commit leaves neither: a batch's offsets are in the checkpoint before it writes. A
    checkpoint without batches that holds where to resume (``RESUME_FILE``, from `cryptolake resume`) starts past
    what its tables hold: it goes with tables that have data."""
    planned = has_batches(spark, checkpoint)
    resuming = _any_file(spark, f"{checkpoint}/{RESUME_FILE}")
    finished = _any_file(spark, f"{checkpoint}/commits/[0-9]*")
    committed = [table for table, uri in tables.items() if has_commit(spark, uri)]
    reset = f"`cryptolake reset {query}` (its tables and checkpoint together), then the layers it feeds"
    if committed and not planned and not resuming:
        raise StateMismatchError(
            f"{', '.join(committed)} {'has' if len(committed) == 1 else 'have'} data but {query}'s checkpoint "
            f"({checkpoint}) has no batch: starting would read the input again and write it twice. Restore the "
            f"checkpoint, or {reset}."
        )
    if finished and not committed:
        raise StateMismatchError(
            f"{query}'s checkpoint ({checkpoint}) has finished batches but {', '.join(tables)} "
            f"{'is' if len(tables) == 1 else 'are'} gone: starting would go on from the checkpoint and never write "
            f"what came before. Restore the tables, or {reset}."
        )


def stop_between_batches(queries: list[StreamingQuery], timeout: float = STOP_WAIT_SECONDS) -> None:
    """Stop each query once it is between batches, or all that still run after ``timeout``: stopped mid-batch, a
    query's writes are interrupted, which Spark logs as errors with stack traces, and the batch runs again at the next
    start. With the feeders stopped first, each layer runs dry soon after the one it reads."""
    deadline = time.monotonic() + timeout
    running = list(queries)
    while running:
        late = time.monotonic() >= deadline
        for query in [q for q in running if late or not q.isActive or not q.status["isTriggerActive"]]:
            query.stop()
            running.remove(query)
        if running:
            time.sleep(0.1)


@dataclass(frozen=True)
class Stage:
    """A layer's query (``start`` starts it, under the name ``query``, which names its checkpoint), the lake table it
    reads (waited for until its first commit) if any, and the tables it writes, which this driver alone maintains."""

    start: StartQueries
    query: str
    upstream: str | None = None
    writes: tuple[str, ...] = ()


def run_layer(layer: str, *stages: Stage) -> int:
    """Run the stages' queries until SIGTERM (exit 0) or until one fails (exit 1, so the pod restarts); exit 2 at
    once on bad settings, or on a checkpoint and tables that disagree: no restart can mend either.

    One stage is one layer; several run layers in one Spark driver, each started once its upstream table exists.
    """
    logs.configure(layer)
    try:
        settings = Settings.from_env()
    except SettingsError as exc:
        log.error("bad settings", extra=logs.fields(error=str(exc)))
        return exits.MISCONFIGURED
    log.info("starting", extra=logs.fields(settings=settings.redacted()))
    stop = logs.stop_on_signals(log)
    spark = build_session(settings, f"cryptolake-{layer}")
    spark.streams.addListener(ProgressLogger(duration_seconds(settings.trigger_interval)))
    # Where its streaming metrics are: the UI's port is the first free one from 4040 when several drivers run.
    log.info(events.SPARK_UI, extra=logs.fields(url=spark.sparkContext.uiWebUrl, metrics=METRICS_PATH))
    try:
        for stage in stages:
            tables = {table: settings.table_uri(table) for table in stage.writes}
            check_state(spark, stage.query, settings.checkpoint_uri(stage.query), tables)
    except StateMismatchError as exc:
        log.error(events.STATE_MISMATCH, extra=logs.fields(error=str(exc)))
        spark.stop()
        return exits.MISCONFIGURED
    maintenance = Maintenance(spark, settings, [table for stage in stages for table in stage.writes], stop)
    maintenance.start()
    queries: list[StreamingQuery] = []
    for stage in stages:
        if stage.upstream is not None:
            wait_for_table(spark, settings.table_uri(stage.upstream), stop)
        if stop.is_set():
            break
        queries += stage.start(spark, settings)
    try:
        while not stop.is_set():
            # Raises StreamingQueryException if a query failed; True alone means one stopped by itself.
            if spark.streams.awaitAnyTermination(1):
                ended = [q.name for q in queries if not q.isActive]
                raise RuntimeError(f"query {', '.join(ended)} stopped by itself")
    except (StreamingQueryException, RuntimeError) as exc:
        advice = what_to_do(failure_text(exc))
        log.error(events.QUERY_FAILED, extra=logs.fields(error=str(exc), what_to_do=advice))
        return exits.FAILED
    finally:
        stop.set()  # ends the maintenance rounds too
        stop_between_batches(queries)
        maintenance.join()
        spark.stop()
    log.info("stopped")
    return exits.OK
