"""Gold: silver trades -> OHLCV + VWAP bars per exchange and symbol, partitioned by day and symbol."""

from __future__ import annotations

import sys

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.streaming.query import StreamingQuery
from pyspark.sql.types import StructType

from core.layers import BAR_INTERVALS, ROLLUP_INTERVALS, SILVER_TABLE, gold_query, gold_table
from core.settings import Settings
from jobs import schemas
from jobs.runtime import Stage, run_layer, write_table


def bars(trades: DataFrame, interval: str, watermark: str, *, across_venues: bool = False) -> DataFrame:
    """Silver trades -> one bar per (exchange, symbol, ``interval`` window), emitted once the watermark passes it.

    ``across_venues``: one bar per symbol over all exchanges instead, with the list of exchanges that traded in it.
    """
    venue = [] if across_venues else ["exchange"]
    # Open and close are the first and last trade by event time, then in the venue's own order: its trade number
    # where it numbers its trades in order, else (null numbers) the Kafka partition and offset of the frame, then the
    # trade's position in it. Across venues, the exchange's name breaks ties first.
    order = F.struct(
        "event_time", *(["exchange"] if across_venues else []), "trade_number", "partition", "offset", "frame_index"
    )
    is_buy = F.col("side") == "buy"
    # Trade ids name a trade within one venue only; across venues, say which venues traded instead.
    identity = (
        [F.array_sort(F.collect_set("exchange")).alias("exchanges")]
        if across_venues
        else [F.min_by("trade_id", order).alias("first_trade_id"), F.max_by("trade_id", order).alias("last_trade_id")]
    )
    identity_columns = ["exchanges"] if across_venues else ["first_trade_id", "last_trade_id"]
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
        .select(*_bar_columns(venue, identity_columns))
    )


def _bar_columns(venue: list[str], identity: list[str]) -> list[Column | str]:
    return [
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
        *identity,
        "last_silver_time",
        F.to_date("bar.start").alias("date"),
    ]


def rollup(bars_1m: DataFrame, interval: str) -> DataFrame:
    """Gold's 1m bars of each exchange and symbol -> its bars of ``interval``, exactly as ``bars`` would make them
    from the trades: open of the first 1m bar, close of the last, extremes and sums over all, vwap from the sums.

    A bar of ``interval`` is emitted once a 1m bar starting at or after its end has come: gold's 1m query writes all
    the 1m bars of a minute in one batch, minutes in order, so none of this bar's can come after that.
    """
    # Each sum keeps the type summing the trades gives, so every gold table has the same schema.
    summed = {c: bars_1m.schema[c].dataType for c in ("volume", "quote_volume", "trades", "buy_volume", "sell_volume")}
    return (
        bars_1m
        # Step 1: 1m bars never come late (see above): the watermark trails the latest bar_start by nothing.
        .withWatermark("bar_start", "0 seconds")
        # Step 2: one group per bar of ``interval``.
        .groupBy(F.window("bar_start", BAR_INTERVALS[interval]).alias("bar"), "exchange", "symbol")
        .agg(
            F.min_by("open", "bar_start").alias("open"),
            F.max("high").alias("high"),
            F.min("low").alias("low"),
            F.max_by("close", "bar_start").alias("close"),
            *(F.sum(c).cast(kind).alias(c) for c, kind in summed.items()),
            F.min_by("first_trade_id", "bar_start").alias("first_trade_id"),
            F.max_by("last_trade_id", "bar_start").alias("last_trade_id"),
            F.max("last_silver_time").alias("last_silver_time"),
        )
        # Step 3: as ``bars`` gives them.
        .select(*_bar_columns(["exchange"], ["first_trade_id", "last_trade_id"]))
    )


PARTITIONS = ("date", "symbol")


def _write(rows: DataFrame, settings: Settings, interval: str, across_venues: bool = False) -> StreamingQuery:
    table, query = gold_table(interval, across_venues), gold_query(interval, across_venues)
    return write_table(rows, settings, query, table, *PARTITIONS)


def start(spark: SparkSession, settings: Settings) -> list[StreamingQuery]:
    """The 1m bars, per exchange and across venues, from silver's trades."""
    trades = spark.readStream.schema(schemas.SILVER).parquet(settings.table_uri(SILVER_TABLE))
    return [
        _write(bars(trades, "1m", settings.gold_watermark, across_venues=across_venues), settings, "1m", across_venues)
        for across_venues in (False, True)
    ]


def start_rollups(spark: SparkSession, settings: Settings) -> list[StreamingQuery]:
    """The longer bars, from the 1m bars per exchange: a few rows a minute to read instead of every trade."""
    columns = bars(spark.createDataFrame([], schemas.SILVER), "1m", settings.gold_watermark).schema
    # The partition columns last, in the order of the table's folders: the file source reads the columns by
    # position, folders' values after the files', whatever order the schema gives them in.
    schema = StructType([c for c in columns if c.name not in PARTITIONS] + [columns[p] for p in PARTITIONS])
    bars_1m = spark.readStream.schema(schema).parquet(settings.table_uri(gold_table("1m")))
    return [_write(rollup(bars_1m, interval), settings, interval) for interval in ROLLUP_INTERVALS]


# The rollups start once the 1m table has its first commit.
STAGES = (Stage(start, SILVER_TABLE), Stage(start_rollups, gold_table("1m")))


def main() -> int:
    return run_layer("gold", *STAGES)


if __name__ == "__main__":
    sys.exit(main())
