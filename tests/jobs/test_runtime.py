import threading
from pathlib import Path

from pyspark.sql import SparkSession

from jobs.runtime import wait_for_table


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
