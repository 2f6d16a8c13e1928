"""Silver: bronze frames parsed into typed trades, deduplicated by trade id; bad rows go to quarantine."""

from __future__ import annotations

import sys

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.streaming.query import StreamingQuery

from cryptolake.settings import Settings
from jobs import schemas, venues
from jobs.layers import BRONZE_TABLE, QUARANTINE_QUERY, QUARANTINE_TABLE, SILVER_TABLE
from jobs.runtime import Stage, run_layer, write_table


def _header(name: str) -> Column:
    return F.try_element_at(F.filter("headers", lambda h: h["key"] == name), F.lit(1))["value"].cast("string")


def _reject_reason(max_clock_skew_hours: int) -> Column:
    """Why a row cannot be a silver trade, or null: the first that applies, in this order."""
    skew = F.abs(F.unix_micros("event_time") - F.unix_micros("ingest_time"))
    # Further apart than the bound, an event time is a venue's or a parser's error, not latency.
    too_far = (skew > max_clock_skew_hours * 3_600_000_000) if max_clock_skew_hours else F.lit(False)
    return (
        F.when(~F.col("exchange").isin(*venues.PARSERS) | F.col("exchange").isNull(), "unknown exchange")
        .when(F.col("trades").isNull(), "unparseable frame")
        .when(F.size("trades") == 0, "frame carries no trade")
        .when(F.col("trade_id").isNull(), "no trade id")
        .when(F.col("price").isNull() | F.col("size").isNull(), "missing or malformed price or size")
        .when((F.col("price") <= 0) | (F.col("size") <= 0), "non-positive price or size")
        .when(F.col("side").isNull(), "no taker side")
        .when(F.col("event_time").isNull(), "no event time")
        .when(too_far, f"event time more than {max_clock_skew_hours} h from ingest time")
    )


def parse_trades(bronze: DataFrame, max_clock_skew_hours: int = 24) -> DataFrame:
    """Bronze rows -> one row per trade, typed, with ``reject_reason`` set on rows that must go to quarantine.

    A frame carrying several trades gives a row each; one that carries none, or cannot be read, gives one row to
    quarantine, so no bronze row disappears.
    """
    return (
        bronze
        # Step 1: venue, symbol and receive time from the ingestor's key and headers.
        .select(
            "value",
            "topic",
            "partition",
            "offset",
            "kafka_timestamp",
            _header("exchange").alias("exchange"),
            F.try_element_at(F.split(F.col("key").cast("string"), ":", 2), F.lit(2)).alias("key_symbol"),
            F.timestamp_micros(_header("received_at_us").try_cast("long")).alias("ingest_time"),
        )
        # Step 2: parse each frame once, with its venue's parser.
        .transform(venues.with_trades, "exchange", "value")
        # Step 3: one row per trade (explode_outer keeps frames without trades, for quarantine).
        .select("*", F.explode_outer("trades").alias("trade"))
        # Step 4: typed fields; try_cast leaves null, not an error, where the venue sent something malformed.
        .select(
            "*",
            F.coalesce("trade.symbol", "key_symbol").alias("symbol"),
            F.col("trade.trade_id").alias("trade_id"),
            F.col("trade.price").try_cast(schemas.PRICE).alias("price"),
            F.col("trade.size").try_cast(schemas.SIZE).alias("size"),
            F.col("trade.side").alias("side"),
            F.col("trade.event_time").alias("event_time"),
        )
        # Step 5: what is wrong with the row, if anything.
        .withColumn("reject_reason", _reject_reason(max_clock_skew_hours))
        .select(
            "exchange",
            "symbol",
            F.split("symbol", "-")[0].alias("base"),
            F.try_element_at(F.split("symbol", "-"), F.lit(2)).alias("quote"),
            "trade_id",
            "price",
            "size",
            (F.col("price") * F.col("size")).alias("quote_amount"),
            "side",
            "event_time",
            "ingest_time",
            "topic",
            "partition",
            "offset",
            F.to_date("event_time").alias("date"),
            "value",
            "kafka_timestamp",
            "reject_reason",
        )
    )


def valid_trades(parsed: DataFrame, watermark: str) -> DataFrame:
    """Rows without a reject reason, each trade once: duplicates within the watermark are dropped."""
    rows = parsed.where(F.col("reject_reason").isNull()).select(*schemas.SILVER.fieldNames())
    key = ["exchange", "symbol", "trade_id"]
    if not rows.isStreaming:
        return rows.dropDuplicates(key)  # a batch is whole: no watermark needed to bound what it remembers
    return rows.withWatermark("event_time", watermark).dropDuplicatesWithinWatermark(key)


def quarantined(parsed: DataFrame) -> DataFrame:
    """Rows with a reject reason, with the raw frame and its Kafka lineage, dated by Kafka time."""
    return parsed.where(F.col("reject_reason").isNotNull()).select(
        "reject_reason",
        "exchange",
        "symbol",
        "value",
        "topic",
        "partition",
        "offset",
        "kafka_timestamp",
        "ingest_time",
        F.to_date("kafka_timestamp").alias("date"),
    )


def start(spark: SparkSession, settings: Settings) -> list[StreamingQuery]:
    bronze = spark.readStream.schema(schemas.BRONZE).parquet(settings.table_uri(BRONZE_TABLE))
    parsed = parse_trades(bronze, settings.silver_max_clock_skew_hours)
    return [
        write_table(valid_trades(parsed, settings.silver_watermark), settings, "silver", SILVER_TABLE, "date"),
        write_table(quarantined(parsed), settings, QUARANTINE_QUERY, QUARANTINE_TABLE, "date"),
    ]


def main() -> int:
    return run_layer("silver", Stage(start, BRONZE_TABLE))


if __name__ == "__main__":
    sys.exit(main())
