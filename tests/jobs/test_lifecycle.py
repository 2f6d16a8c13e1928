from datetime import date, timedelta
from pathlib import Path

from pyspark.sql import SparkSession

from core.layers import BRONZE_TABLE, QUARANTINE_TABLE, gold_table
from core.settings import Settings
from jobs.lifecycle import maintain, retention_days


def test_each_table_keeps_the_days_of_its_layers_setting() -> None:
    settings = Settings(bronze_retention_days=3, silver_retention_days=90)
    assert [retention_days(settings, t) for t in (BRONZE_TABLE, QUARANTINE_TABLE, gold_table("1h"))] == [3, 90, 0]


def test_a_round_deletes_the_days_past_retention_and_vacuums_the_files_they_left(
    spark: SparkSession, tmp_path: Path
) -> None:
    today = date.today()
    days = [today - timedelta(days=n) for n in (0, 1, 2, 5)]
    uri = str(tmp_path / "table")
    for day in days:  # a version and a file per day
        spark.createDataFrame([(day, 1)], "date date, n int").write.format("delta").mode("append").partitionBy(
            "date"
        ).save(uri)
    files_before = {p for p in (tmp_path / "table").rglob("*.parquet")}
    # Vacuuming files younger than a week needs Delta's check off, as jobs/session.py turns it off for such settings.
    spark.conf.set("spark.databricks.delta.retentionDurationCheck.enabled", "false")
    try:
        maintain(spark, uri, days=2, file_retention_hours=0)
    finally:
        spark.conf.unset("spark.databricks.delta.retentionDurationCheck.enabled")
    kept = {r.date for r in spark.read.format("delta").load(uri).collect()}
    assert kept == set(days[:3])  # today and the two days before: the day five days back is gone
    files_after = {p for p in (tmp_path / "table").rglob("*.parquet")}
    assert len(files_after) == 3 and files_after < files_before
    operations = [r.operation for r in spark.sql(f"DESCRIBE HISTORY delta.`{uri}`").collect()]
    assert "DELETE" in operations and "VACUUM END" in operations
