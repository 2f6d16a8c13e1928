import shutil
import threading
from pathlib import Path

import pytest
from delta.tables import DeltaTable
from pyspark.sql import SparkSession

from core.layers import RESUME_FILE
from jobs.runtime import StateMismatchError, check_state, read_table, wait_for_table


def test_a_table_counts_as_there_once_its_first_commit_is(spark: SparkSession, tmp_path: Path) -> None:
    uri = str(tmp_path / "table")
    # Delta makes the log's folder before the first commit is in it: a source started then fails ("schema not set").
    (tmp_path / "table" / "_delta_log" / "_staged_commits").mkdir(parents=True)
    stop = threading.Event()
    waiter = threading.Thread(target=wait_for_table, args=(spark, uri, stop, 0.05))
    waiter.start()
    waiter.join(timeout=1.0)
    assert waiter.is_alive(), "the wait ended before the first commit"
    spark.range(1).write.format("delta").save(uri)
    waiter.join(timeout=60)
    stopped = waiter.is_alive()
    stop.set()
    assert not stopped, "the wait went on after the first commit"


def test_a_layer_reads_on_past_the_expiry_of_its_upstreams_old_days(spark: SparkSession, tmp_path: Path) -> None:
    upstream, seen = str(tmp_path / "upstream"), str(tmp_path / "seen")

    def append(*days: str) -> None:
        rows = spark.createDataFrame([(d,) for d in days], "day string").selectExpr("day", "to_date(day) AS date")
        rows.write.format("delta").mode("append").partitionBy("date").save(upstream)

    def read_new() -> None:
        query = (
            read_table(spark, upstream)
            .writeStream.format("delta")
            .option("checkpointLocation", str(tmp_path / "checkpoint"))
            .trigger(availableNow=True)
            .start(seen)
        )
        query.awaitTermination()

    append("2026-11-01", "2026-12-01")
    read_new()
    # The upstream's lifecycle expires its old day, then new rows come.
    DeltaTable.forPath(spark, upstream).delete("date < '2026-12-01'")
    append("2026-12-02")
    read_new()
    got = sorted(r.day for r in spark.read.format("delta").load(seen).collect())
    assert got == ["2026-11-01", "2026-12-01", "2026-12-02"]


def test_a_checkpoint_and_tables_that_disagree_refuse_to_start(spark: SparkSession, tmp_path: Path) -> None:
    upstream, table, checkpoint = (str(tmp_path / name) for name in ("upstream", "table", "checkpoint"))
    spark.range(3).write.format("delta").save(upstream)
    tables = {"the/table": table}
    check_state(spark, "layer", checkpoint, tables)  # neither yet: a first start
    query = (
        read_table(spark, upstream)
        .writeStream.format("delta")
        .option("checkpointLocation", checkpoint)
        .trigger(availableNow=True)
        .start(table)
    )
    query.awaitTermination()
    check_state(spark, "layer", checkpoint, tables)  # a batch in both

    shutil.move(checkpoint, tmp_path / "kept")
    with pytest.raises(StateMismatchError, match=r"the/table has data but layer's checkpoint .* write it twice"):
        check_state(spark, "layer", checkpoint, tables)
    # `cryptolake resume` leaves in its place one that holds only where to start: that one goes with the table.
    Path(checkpoint).mkdir()
    (Path(checkpoint) / RESUME_FILE).write_text("{}")
    check_state(spark, "layer", checkpoint, tables)
    shutil.rmtree(checkpoint)

    shutil.move(tmp_path / "kept", checkpoint)
    shutil.rmtree(table)
    with pytest.raises(StateMismatchError, match=r"finished batches but the/table is gone"):
        check_state(spark, "layer", checkpoint, tables)
