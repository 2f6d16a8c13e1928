"""Bronze: every Kafka record, unchanged, with its Kafka metadata, in a Delta table partitioned by ingest date."""

from __future__ import annotations

import sys

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.streaming.query import StreamingQuery

from core.kafka import java_config
from core.layers import BRONZE_TABLE
from core.settings import Settings
from jobs.runtime import Stage, run_layer, write_table


def bronze_records(kafka: DataFrame) -> DataFrame:
    """Kafka source rows -> bronze rows: raw key, value and headers plus topic, partition, offset and time."""
    return kafka.select(
        "key",
        "value",
        "topic",
        "partition",
        "offset",
        F.col("timestamp").alias("kafka_timestamp"),
        "headers",
        F.to_date("timestamp").alias("date"),
    )


def start(spark: SparkSession, settings: Settings) -> list[StreamingQuery]:
    kafka = (
        spark.readStream.format("kafka")
        .options(**{f"kafka.{key}": value for key, value in java_config(settings).items()})
        .option("subscribe", settings.kafka_topic)
        # A new checkpoint starts from the beginning of the topic; an existing one from where it stopped.
        .option("startingOffsets", "earliest")
        .option("includeHeaders", "true")
        .option("maxOffsetsPerTrigger", settings.max_offsets_per_trigger)
        .load()
    )
    return [write_table(bronze_records(kafka), settings, "bronze", BRONZE_TABLE, "date")]


STAGE = Stage(start, "bronze", writes=(BRONZE_TABLE,))


def main() -> int:
    return run_layer("bronze", STAGE)


if __name__ == "__main__":
    sys.exit(main())
