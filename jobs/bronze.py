"""Bronze: every Kafka record, unchanged, with its Kafka metadata, in a Delta table partitioned by ingest date."""

from __future__ import annotations

import json
import logging
import sys

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.streaming.query import StreamingQuery

from core import events, logs
from core.kafka import java_config
from core.layers import BRONZE_TABLE, RESUME_FILE
from core.settings import Settings
from jobs.runtime import Stage, has_batches, read_text, run_layer, write_table

log = logging.getLogger("jobs")


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


def starting_offsets(spark: SparkSession, settings: Settings) -> str:
    """Where a checkpoint without batches starts reading Kafka: where `cryptolake resume` said, past the records the
    table holds, with the gaps it found logged again here; else the beginning of the topic. A checkpoint with batches
    goes on from where it stopped, whatever this says."""
    checkpoint = settings.checkpoint_uri("bronze")
    text = None if has_batches(spark, checkpoint) else read_text(spark, f"{checkpoint}/{RESUME_FILE}")
    if text is None:
        return "earliest"
    resume = json.loads(text)
    log.warning(events.RESUMED, extra=logs.fields(**resume))
    return json.dumps(resume["starting_offsets"])


def start(spark: SparkSession, settings: Settings) -> list[StreamingQuery]:
    kafka = (
        spark.readStream.format("kafka")
        .options(**{f"kafka.{key}": value for key, value in java_config(settings).items()})
        .option("subscribe", settings.kafka_topic)
        .option("startingOffsets", starting_offsets(spark, settings))
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
