"""Silver: bronze frames parsed into typed trades, deduplicated by trade id; bad rows go to quarantine."""

from __future__ import annotations

import sys

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.streaming.query import StreamingQuery

from cryptolake.settings import Settings
from jobs import schemas
from jobs.bronze import TABLE as BRONZE_TABLE
from jobs.runtime import run_layer

TABLE = "silver/trades"
QUARANTINE_TABLE = "silver/quarantine"
KNOWN_EXCHANGES = ("binance",)
# Further apart than this, an event time is a venue's or a parser's error, not latency.
MAX_CLOCK_SKEW_HOURS = 24


def _header(name: str) -> Column:
    return F.try_element_at(F.filter("headers", lambda h: h["key"] == name), F.lit(1))["value"].cast("string")


def _binance(frame: Column) -> Column:
    """A Binance trade frame -> struct of the common trade fields; null if it is no trade frame at all."""
    data = F.from_json(frame, schemas.BINANCE_TRADE_FRAME)["data"].cast(schemas.BINANCE_TRADE)
    fields = F.struct(
        data["trade_id"].cast("string").alias("trade_id"),
        data["price"].try_cast(schemas.PRICE).alias("price"),
        data["quantity"].try_cast(schemas.SIZE).alias("size"),
        # The buyer was the maker, so the taker sold.
        F.when(data["buyer_is_maker"], "sell").when(~data["buyer_is_maker"], "buy").alias("side"),
        F.timestamp_millis(data["trade_time"]).alias("event_time"),
    )
    return F.when(data.isNotNull(), fields)


def parse_trades(bronze: DataFrame) -> DataFrame:
    """Bronze rows -> one row per trade, typed, with ``reject_reason`` set on rows that must go to quarantine."""
    symbol = F.try_element_at(F.split(F.col("key").cast("string"), ":", 2), F.lit(2))
    reject_reason = (
        F.when(~F.col("exchange").isin(*KNOWN_EXCHANGES) | F.col("exchange").isNull(), "unknown exchange")
        .when(F.col("parsed").isNull(), "unparseable frame")
        .when(F.col("trade_id").isNull(), "no trade id")
        .when(F.col("price").isNull() | F.col("size").isNull(), "missing or malformed price or size")
        .when((F.col("price") <= 0) | (F.col("size") <= 0), "non-positive price or size")
        .when(F.col("event_time").isNull(), "no event time")
        .when(
            F.abs(F.unix_micros("event_time") - F.unix_micros("ingest_time")) > MAX_CLOCK_SKEW_HOURS * 3_600_000_000,
            f"event time more than {MAX_CLOCK_SKEW_HOURS} h from ingest time",
        )
    )
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
            symbol.alias("symbol"),
            F.timestamp_micros(_header("received_at_us").try_cast("long")).alias("ingest_time"),
        )
        # Step 2: parse the frame once, typed without failing on bad input (try_cast leaves null for quarantine).
        .select("*", _binance(F.col("value").cast("string")).alias("parsed"))
        .select("*", "parsed.*")
        # Step 3: what is wrong with the row, if anything.
        .withColumn("reject_reason", reject_reason)
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
    parsed = parse_trades(bronze)
    sinks = [
        ("silver", valid_trades(parsed, settings.silver_watermark), TABLE),
        ("silver_quarantine", quarantined(parsed), QUARANTINE_TABLE),
    ]
    return [
        (
            rows.writeStream.queryName(name)
            .format("parquet")
            .option("path", settings.table_uri(table))
            .option("checkpointLocation", settings.checkpoint_uri(name))
            .partitionBy("date")
            .trigger(processingTime=settings.trigger_interval)
            .start()
        )
        for name, rows, table in sinks
    ]


def main() -> int:
    return run_layer("silver", start, upstream=BRONZE_TABLE)


if __name__ == "__main__":
    sys.exit(main())
