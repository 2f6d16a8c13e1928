"""Gold: silver trades -> OHLCV + VWAP bars per exchange and symbol, partitioned by day and symbol."""

from __future__ import annotations

import sys

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.streaming.query import StreamingQuery

from core.layers import BAR_INTERVALS, GOLD_OUTPUTS, SILVER_TABLE, gold_query, gold_table
from core.settings import Settings
from jobs import schemas
from jobs.runtime import Stage, run_layer, write_table


def bars(trades: DataFrame, interval: str, watermark: str, *, across_venues: bool = False) -> DataFrame:
    """Silver trades -> one bar per (exchange, symbol, ``interval`` window), emitted once the watermark passes it.

    ``across_venues``: one bar per symbol over all exchanges instead, with the list of exchanges that traded in it.
    """
    venue = [] if across_venues else ["exchange"]
    # Open and close are the first and last trade by event time, then in the venue's own order: Kafka partition and
    # offset of the frame, then the trade's position in it. Across venues, the exchange's name breaks ties first.
    order = F.struct("event_time", *(["exchange"] if across_venues else []), "partition", "offset", "frame_index")
    is_buy = F.col("side") == "buy"
    # Trade ids name a trade within one venue only; across venues, say which venues traded instead.
    identity = (
        [F.array_sort(F.collect_set("exchange")).alias("exchanges")]
        if across_venues
        else [F.min_by("trade_id", order).alias("first_trade_id"), F.max_by("trade_id", order).alias("last_trade_id")]
    )
    return (
        trades
        # Step 1: how late a trade may come and still count in its bar.
        .withWatermark("event_time", watermark)
        # Step 2: one group per bar.
        .groupBy(F.window("event_time", BAR_INTERVALS[interval]).alias("bar"), *venue, "symbol")
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
            *identity,
            # Trades of this bar that silver wrote after this time came too late for it (lake.read_late_trades).
            F.max("silver_time").alias("last_silver_time"),
        )
        # Step 3: bar bounds, vwap, and the day the bar starts on to partition by.
        .select(
            F.col("bar.start").alias("bar_start"),
            F.col("bar.end").alias("bar_end"),
            *venue,
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
            *(["exchanges"] if across_venues else ["first_trade_id", "last_trade_id"]),
            "last_silver_time",
            F.to_date("bar.start").alias("date"),
        )
    )


def start(spark: SparkSession, settings: Settings) -> list[StreamingQuery]:
    trades = spark.readStream.schema(schemas.SILVER).parquet(settings.table_uri(SILVER_TABLE))
    return [
        write_table(
            bars(trades, interval, settings.gold_watermark, across_venues=across_venues),
            settings,
            gold_query(interval, across_venues),
            gold_table(interval, across_venues),
            "date",
            "symbol",
        )
        for interval, across_venues in GOLD_OUTPUTS
    ]


def main() -> int:
    return run_layer("gold", Stage(start, SILVER_TABLE))


if __name__ == "__main__":
    sys.exit(main())
