"""The layers' own log lines and Spark's: batch counts from the query progress, quiet JSON logging, one line when
batches fall behind, stops between batches (no Spark started)."""

from __future__ import annotations

import json
import logging
import re
import time
import zipfile
from datetime import datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from core.settings import Settings
from core.throttle import Throttle
from jobs.runtime import (
    WRITTEN_METRIC,
    BatchCounts,
    ProgressLogger,
    batch_summary,
    failure_text,
    stop_between_batches,
    utc_text,
    what_to_do,
)
from jobs.session import LOG4J2_CONFIG, spark_conf

PYSPARK_JARS = Path(__import__("pyspark").__file__).parent / "jars"


def progress(name: str, written: int, duration_ms: int = 900) -> dict[str, Any]:
    """A batch's progress as Spark 4.0 reports it for a file sink, with the observed metric of ``write_table``."""
    return {
        "name": name,
        "batchId": 7,
        "numInputRows": 600,
        "processedRowsPerSecond": 666.7,
        "durationMs": {"triggerExecution": duration_ms},
        "eventTime": {"watermark": "2026-12-02T12:00:00.000Z"},
        "stateOperators": [{"numRowsTotal": 120, "numRowsUpdated": 600, "numRowsDroppedByWatermark": 2}],
        "sink": {"description": "FileSink[s3a://lakehouse/silver/trades]", "numOutputRows": -1},
        "observedMetrics": {WRITTEN_METRIC: {"rows": written}},
    }


def test_a_batch_line_counts_the_rows_written() -> None:
    summary = batch_summary(progress("silver", 590))
    assert summary["output_rows"] == 590
    assert (summary["input_rows"], summary["late_rows"], summary["state_rows"]) == (600, 2, 120)
    assert "quarantined_rows" not in summary


def test_a_batch_line_takes_the_counts_of_the_layers_own_writer(caplog: pytest.LogCaptureFixture) -> None:
    counts = BatchCounts()
    counts.record("silver", 7, output_rows=580, quarantined_rows=20)
    listener = ProgressLogger(3.0, counts=counts)
    with caplog.at_level(logging.INFO, logger="jobs"):
        listener.onQueryProgress(event("silver", 900))
        listener.onQueryProgress(event("silver", 900))  # the same batch's line again: its counts were taken
    first, again = (r.fields for r in caplog.records)  # type: ignore[attr-defined]
    assert (first["output_rows"], first["quarantined_rows"]) == (580, 20)
    assert again["output_rows"] == 1 and "quarantined_rows" not in again


class JvmError(Exception):
    """An error as PySpark converts a JVM one: its cause in ``_cause``."""

    def __init__(self, message: str, cause: BaseException | None = None) -> None:
        super().__init__(message)
        self._cause = cause


def test_the_advice_on_lost_kafka_data_finds_it_among_the_causes() -> None:
    lost = JvmError("KafkaIllegalStateException: Some data may have been lost because they are not available")
    write = JvmError("[TASK_WRITE_FAILED] Task failed while writing rows to s3a://lake/bronze/trades", lost)
    failed = JvmError("[STREAM_FAILED] terminated with exception: [TASK_WRITE_FAILED] Task failed", write)
    assert what_to_do(str(failed)) is None
    advice = what_to_do(failure_text(failed))
    assert advice is not None and "cryptolake reset bronze" in advice and "cryptolake resume bronze" in advice


def event(name: str, duration_ms: int) -> SimpleNamespace:
    return SimpleNamespace(progress=SimpleNamespace(json=json.dumps(progress(name, 1, duration_ms))))


def test_slow_batches_make_one_line_per_query_and_minute(caplog: pytest.LogCaptureFixture) -> None:
    now = [0.0]
    listener = ProgressLogger(3.0, Throttle(60.0, clock=lambda: now[0]))
    with caplog.at_level(logging.INFO, logger="jobs"):
        for clock, query, duration_ms in ((0, "bronze", 5000), (1, "bronze", 7000), (2, "silver", 3500)):
            now[0] = clock
            listener.onQueryProgress(event(query, duration_ms))
        listener.onQueryProgress(event("bronze", 2000))  # in time: nothing to say
        now[0] = 61.0
        listener.onQueryProgress(event("bronze", 4000))
    behind = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert [(r.fields["query"], r.fields["duration_ms"], r.fields["similar_held_back"]) for r in behind] == [  # type: ignore[attr-defined]
        ("bronze", 5000, 0),
        ("silver", 3500, 0),
        ("bronze", 4000, 1),
    ]
    assert behind[0].fields["trigger_ms"] == 3000  # type: ignore[attr-defined]


class FakeQuery:
    """A query whose batch ends after ``busy`` looks at its status."""

    def __init__(self, busy: int) -> None:
        self.busy = busy
        self.stopped_while_busy: bool | None = None

    @property
    def isActive(self) -> bool:  # noqa: N802 - Spark's API
        return self.stopped_while_busy is None

    @property
    def status(self) -> dict[str, bool]:
        self.busy -= 1
        return {"isTriggerActive": self.busy >= 0}

    def stop(self) -> None:
        self.stopped_while_busy = self.busy > 0


def test_queries_are_stopped_between_batches() -> None:
    queries = [FakeQuery(3), FakeQuery(0)]
    stop_between_batches(queries, timeout=30)  # type: ignore[arg-type]
    assert [q.stopped_while_busy for q in queries] == [False, False]


def test_a_batch_that_will_not_end_is_stopped_all_the_same() -> None:
    query = FakeQuery(10**9)
    stop_between_batches([query], timeout=0.2)  # type: ignore[list-item]
    assert query.stopped_while_busy


def properties(path: Path) -> dict[str, str]:
    """A Java properties file's entries, continued lines joined."""
    text = re.sub(r"\\\n\s*", "", path.read_text())
    entries = (line.split("=", 1) for line in text.splitlines() if line.strip() and not line.startswith("#"))
    return {key.strip(): value.strip() for key, value in entries}


def test_spark_logs_warnings_and_up_as_json_and_leaves_slow_batches_to_us() -> None:
    conf = properties(LOG4J2_CONFIG)
    assert conf["rootLogger.level"] == "warn"
    assert conf["appender.console.layout.type"] == "JsonTemplateLayout"
    assert list(PYSPARK_JARS.glob("log4j-layout-template-json-*.jar")), "the layout is not on Spark's classpath"
    template = json.loads(conf["appender.console.layout.eventTemplate"])
    assert {"ts", "level", "component", "event", "logger", "error"} <= template.keys()
    names = [key for key in conf if re.fullmatch(r"logger\.\w+\.name", key)]
    levels = {conf[key]: conf[key.replace(".name", ".level")] for key in names}
    assert levels["org.apache.spark.sql.execution.streaming.runtime.ProcessingTimeExecutor"] == "error"
    # Spark 4.1 moved its streaming classes: a logger named after a class that is gone silently filters nothing.
    classes = {
        name.removesuffix(".class").replace("/", ".")
        for jar in PYSPARK_JARS.glob("spark-*.jar")
        for name in zipfile.ZipFile(jar).namelist()
        if name.endswith(".class")
    }
    assert not [name for name in levels if name.startswith("org.apache.spark") and name not in classes]


def test_the_session_hands_the_log_config_to_the_drivers_jvm() -> None:
    options = spark_conf(Settings())["spark.driver.extraJavaOptions"]
    assert options == f"-Dlog4j2.configurationFile={LOG4J2_CONFIG}"
    assert LOG4J2_CONFIG.is_file()


def test_a_batch_line_gives_the_kafka_lag_per_partition() -> None:
    """A Kafka source's offsets as Spark's progress reports them ({topic: {partition: offset}}): the lag is the newest
    offset Kafka had less where the batch ended. A Delta source (silver's, gold's) has none."""
    kafka = {
        "description": "KafkaV2[Subscribe[crypto.trades]]",
        "startOffset": {"crypto.trades": {"0": 100, "1": 40}},
        "endOffset": {"crypto.trades": {"0": 180, "1": 40}},
        "latestOffset": {"crypto.trades": {"0": 200, "1": 40}},
    }
    delta = {
        "description": "DeltaSource[s3a://lakehouse/bronze/trades]",
        "endOffset": {"sourceVersion": 1, "reservoirVersion": 12, "index": -1, "isStartingVersion": False},
        "latestOffset": None,
    }
    assert batch_summary({**progress("bronze", 80), "sources": [kafka]})["kafka_lag"] == {
        "crypto.trades-0": 20,
        "crypto.trades-1": 0,
    }
    assert "kafka_lag" not in batch_summary({**progress("silver", 80), "sources": [delta]})


def test_a_batch_line_gives_the_newest_trade_in_utc(monkeypatch: pytest.MonkeyPatch) -> None:
    """Spark hands Python naive times in the process's zone; the line says UTC whatever that zone is."""
    monkeypatch.setenv("TZ", "Asia/Tokyo")  # UTC+9, no daylight saving
    time.tzset()
    try:
        assert utc_text(datetime(2026, 12, 7, 19, 30, 5, 250000)) == "2026-12-07T10:30:05.250000+00:00"
        assert utc_text(None) is None
    finally:
        monkeypatch.undo()
        time.tzset()
