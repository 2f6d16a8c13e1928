"""Gold: silver trades -> OHLCV + VWAP bars per exchange and symbol, partitioned by day and symbol."""

from __future__ import annotations

import sys

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.streaming.query import StreamingQuery

from cryptolake.settings import Settings
from jobs import schemas
from jobs.runtime import run_layer
from jobs.silver import TABLE as SILVER_TABLE

INTERVALS = {"1m": "1 minute"}


def table(interval: str) -> str:
    return f"gold/bars_{interval}"


def bars(trades: DataFrame, interval: str, watermark: str) -> DataFrame:
    """Silver trades -> one bar per (exchange, symbol, ``interval`` window), emitted once the watermark passes it."""
    # Open and close are the first and last trade by event time; the trade id breaks ties, numerically where it is a
    # number, so that id 10 follows id 9.
    order = F.struct("event_time", F.col("trade_id").try_cast("long"), "trade_id")
    is_buy = F.col("side") == "buy"
    return (
        trades
        # Step 1: how late a trade may come and still count in its bar.
        .withWatermark("event_time", watermark)
        # Step 2: one group per bar.
        .groupBy(F.window("event_time", INTERVALS[interval]).alias("bar"), "exchange", "symbol")
        .agg(
            F.min_by("price", order).alias("open"),
            F.max("price").alias("high"),
            F.min("price").alias("low"),
            F.max_by("price", order).alias("close"),
            F.sum("size").alias("volume"),
            F.sum("quote_amount").alias("quote_volume"),
            F.count(F.lit(1)).alias("trades"),
            F.sum(F.when(is_buy, F.col("size")).otherwise(0)).alias("buy_volume"),
            F.sum(F.when(~is_buy, F.col("size")).otherwise(0)).alias("sell_volume"),
            F.min_by("trade_id", order).alias("first_trade_id"),
            F.max_by("trade_id", order).alias("last_trade_id"),
        )
        # Step 3: bar bounds, vwap, and the day the bar starts on to partition by.
        .select(
            F.col("bar.start").alias("bar_start"),
            F.col("bar.end").alias("bar_end"),
            "exchange",
            "symbol",
            "open",
            "high",
            "low",
            "close",
            "volume",
            "quote_volume",
            (F.col("quote_volume").cast("double") / F.col("volume").cast("double")).alias("vwap"),
            "trades",
            "buy_volume",
            "sell_volume",
            "first_trade_id",
            "last_trade_id",
            F.to_date("bar.start").alias("date"),
        )
    )


def start(spark: SparkSession, settings: Settings) -> list[StreamingQuery]:
    trades = spark.readStream.schema(schemas.SILVER).parquet(settings.table_uri(SILVER_TABLE))
    return [
        (
            bars(trades, interval, settings.gold_watermark)
            .writeStream.queryName(f"gold_{interval}")
            .format("parquet")
            .outputMode("append")
            .option("path", settings.table_uri(table(interval)))
            .option("checkpointLocation", settings.checkpoint_uri(f"gold_{interval}"))
            .partitionBy("date", "symbol")
            .trigger(processingTime=settings.trigger_interval)
            .start()
        )
        for interval in INTERVALS
    ]


def main() -> int:
    return run_layer("gold", start, upstream=SILVER_TABLE)


if __name__ == "__main__":
    sys.exit(main())
