"""Gold: silver trades -> OHLCV + VWAP bars per exchange and symbol (and across venues), updated every batch.

Each batch's trades make their share of each bar they touch, which a MERGE adds to the bar in the table: the bar of the
current minute is there one batch after its trades, and a trade that comes after its bar was written restates it (the
table's history keeps every version). A bar is ``complete`` once gold's watermark, its newest trade's time less
``gold_watermark``, has passed its end.
"""

from __future__ import annotations

import sys
from concurrent.futures import ThreadPoolExecutor
from datetime import date, datetime, timedelta

from delta.tables import DeltaTable
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.streaming.query import StreamingQuery

from core.layers import BAR_INTERVALS, GOLD_OUTPUTS, SILVER_TABLE, gold_table
from core.settings import Settings, duration_seconds
from jobs.runtime import (
    COUNTS,
    Stage,
    TableUri,
    WriteBatch,
    read_table,
    run_layer,
    txn_app_id,
    utc_text,
    write_batches,
)

# Where a trade sits in the order that makes a bar's open and close: event time, then (across venues) the exchange's
# name, then the venue's own order: its trade number where it numbers its trades in order, else (null numbers) the
# Kafka partition and offset of the frame, then the trade's position in it. Within one exchange its name changes
# nothing, so one order serves every table; bars keep the open's and the close's, to merge with later trades.
ORDER = ("event_time", "exchange", "trade_number", "partition", "offset", "frame_index")
SUMS = ("volume", "quote_volume", "trades", "buy_volume", "sell_volume")
PARTITIONS = ("date", "symbol")


def bars(trades: DataFrame, interval: str = "1m") -> DataFrame:
    """Silver trades -> one bar per (exchange, symbol, ``interval`` window) they fall in, of these trades alone."""
    order = F.struct(*ORDER)
    is_buy = F.col("side") == "buy"
    return (
        trades
        # Step 1: one group per bar.
        .groupBy(F.window("event_time", BAR_INTERVALS[interval]).alias("bar"), "exchange", "symbol")
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
            F.min(order).alias("open_order"),
            F.max(order).alias("close_order"),
        )
        # Step 2: bar bounds, vwap, and the day the bar starts on to partition by.
        .select(*_bar_columns(across_venues=False))
    )


def rollup(bars_1m: DataFrame, interval: str, *, across_venues: bool = False) -> DataFrame:
    """Bars per exchange -> bars of ``interval`` per exchange, or per symbol over all exchanges (``across_venues``),
    exactly as ``bars`` would make them from the trades: open of the first bar by ``open_order``, close of the last,
    extremes and sums over all, vwap from the sums."""
    venue = [] if across_venues else ["exchange"]
    # Each sum keeps the type summing the trades gives, so every gold table has the same types.
    kinds = {c: bars_1m.schema[c].dataType for c in SUMS}
    identity = (
        # Trade ids name a trade within one venue only; across venues, say which venues traded instead.
        [F.array_sort(F.collect_set("exchange")).alias("exchanges")]
        if across_venues
        else [
            F.min_by("first_trade_id", "open_order").alias("first_trade_id"),
            F.max_by("last_trade_id", "close_order").alias("last_trade_id"),
        ]
    )
    return (
        bars_1m
        # Step 1: one group per bar of ``interval``.
        .groupBy(F.window("bar_start", BAR_INTERVALS[interval]).alias("bar"), *venue, "symbol")
        .agg(
            F.min_by("open", "open_order").alias("open"),
            F.max("high").alias("high"),
            F.min("low").alias("low"),
            F.max_by("close", "close_order").alias("close"),
            *(F.sum(c).cast(kind).alias(c) for c, kind in kinds.items()),
            *identity,
            F.min("open_order").alias("open_order"),
            F.max("close_order").alias("close_order"),
        )
        # Step 2: as ``bars`` gives them.
        .select(*_bar_columns(across_venues))
    )


def _bar_columns(across_venues: bool) -> list[Column | str]:
    return [
        F.col("bar.start").alias("bar_start"),
        F.col("bar.end").alias("bar_end"),
        *([] if across_venues else ["exchange"]),
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
        "open_order",
        "close_order",
        F.to_date("bar.start").alias("date"),
    ]


def gold_bars(bars_1m: DataFrame, interval: str, across_venues: bool) -> DataFrame:
    """The bars of one gold table, from the 1m bars per exchange."""
    if (interval, across_venues) == ("1m", False):
        return bars_1m
    return rollup(bars_1m, interval, across_venues=across_venues)


def with_complete(bars: DataFrame, watermark: datetime) -> DataFrame:
    """``bars`` with ``complete``: whether the watermark has passed the bar's end."""
    return bars.withColumn("complete", F.col("bar_end") <= F.lit(watermark))


def _merged(column: str) -> str:
    """How MERGE updates ``column`` of a bar in the table (t) with the same bar's share of a batch (s)."""
    earlier, later = "s.open_order < t.open_order", "s.close_order > t.close_order"
    if column in SUMS:
        return f"t.{column} + s.{column}"
    return {
        "open": f"CASE WHEN {earlier} THEN s.open ELSE t.open END",
        "high": "greatest(t.high, s.high)",
        "low": "least(t.low, s.low)",
        "close": f"CASE WHEN {later} THEN s.close ELSE t.close END",
        "vwap": "CAST(t.quote_volume + s.quote_volume AS DOUBLE) / CAST(t.volume + s.volume AS DOUBLE)",
        "first_trade_id": f"CASE WHEN {earlier} THEN s.first_trade_id ELSE t.first_trade_id END",
        "last_trade_id": f"CASE WHEN {later} THEN s.last_trade_id ELSE t.last_trade_id END",
        "exchanges": "array_sort(array_union(t.exchanges, s.exchanges))",
        "open_order": "least(t.open_order, s.open_order)",
        "close_order": "greatest(t.close_order, s.close_order)",
        # A bar once complete stays so: a restatement is a correction, visible in the history, not a reopening.
        "complete": "t.complete OR s.complete",
    }[column]


def merge_bars(
    spark: SparkSession, uri: str, bars_: DataFrame, watermark: datetime | None, days: list[date], batch_id: int
) -> None:
    """Add a batch's bars to the table at ``uri`` (a new bar is inserted), and, given a ``watermark``, mark complete
    the table's bars of ``days`` it has passed since. ``days``: the batch's, and with a watermark its day and the one
    before, so the MERGE reads those days' files only; a bar more than a day older, first written after a restart by a
    batch of late trades alone, waits for its next trade to be marked complete."""
    across_venues = "exchanges" in bars_.columns
    key = ["bar_start", "symbol", *([] if across_venues else ["exchange"])]
    if not DeltaTable.isDeltaTable(spark, uri):
        # The table's first version: idempotent as the MERGEs after it, so a batch run again merges nothing twice.
        txn: dict[str, str | int] = {"txnAppId": txn_app_id("gold"), "txnVersion": batch_id}
        bars_.write.format("delta").options(**txn).partitionBy(*PARTITIONS).save(uri)
        return
    target = DeltaTable.forPath(spark, uri)
    rows = bars_
    if watermark is not None:
        # Step 1: the table's incomplete bars the watermark has passed and the batch leaves alone, as rows without
        # trades.
        days = sorted({*days, watermark.date(), watermark.date() - timedelta(days=1)})
        passed = (
            target.toDF()
            .where(F.col("date").isin(days) & ~F.col("complete") & (F.col("bar_end") <= F.lit(watermark)))
            .select(*key, "bar_end", "date")
            .join(bars_.select(*key), key, "left_anti")
        )
        rows = bars_.unionByName(passed, allowMissingColumns=True)
    # Step 2: one MERGE of both.
    (
        target.alias("t")
        .merge(
            rows.alias("s"),
            F.col("t.date").isin(days) & F.expr(" AND ".join(f"t.{k} = s.{k}" for k in [*key, "date"])),
        )
        .whenMatchedUpdate("s.trades IS NULL", {"complete": F.lit(True)})
        .whenMatchedUpdate(set={c: F.expr(_merged(c)) for c in bars_.columns if c not in {*key, "bar_end", "date"}})
        .whenNotMatchedInsertAll("s.trades IS NOT NULL")
        .execute()
    )


def batch_writer(table_uri: TableUri, watermark_delay: str) -> WriteBatch:
    """Each batch of silver trades -> its bars, merged into every gold table, once per batch id."""
    delay = timedelta(seconds=duration_seconds(watermark_delay))
    newest_seen: list[datetime] = []  # the newest trade time of this run's batches: the watermark never goes back
    # Per table, how many bar widths since the epoch the watermark had passed when the table's passed bars were last
    # marked complete: until it passes one more bar end, no other bar can have become complete, and the MERGE skips
    # reading the table for them.
    marked: dict[str, int] = {}

    def passed_ends(watermark: datetime, interval: str) -> int:
        return int(watermark.timestamp() // duration_seconds(BAR_INTERVALS[interval]))

    def write(trades: DataFrame, batch_id: int) -> None:
        spark = trades.sparkSession
        # Step 1: the batch's 1m bars per exchange, kept: every table's bars come from them, read once from silver.
        minute = bars(trades).persist()
        try:
            count, days, newest = minute.agg(
                F.count(F.lit(1)), F.collect_set("date"), F.max("close_order.event_time")
            ).collect()[0]
            COUNTS.record("gold", batch_id, output_rows=count, newest_event=utc_text(newest))
            if newest is None:
                return
            newest_seen[:] = [max([newest, *newest_seen])]
            watermark = newest_seen[0] - delay
            # Step 2: each table's bars, complete where the watermark has passed them, merged side by side (each MERGE
            # waits on the store more than on the CPU). Delta applies a batch id once per table.
            conf = spark.conf
            conf.set("spark.databricks.delta.write.txnAppId", txn_app_id("gold"))
            conf.set("spark.databricks.delta.write.txnVersion", str(batch_id))
            try:
                tables = {gold_table(i, a): (i, a) for i, a in GOLD_OUTPUTS}
                ends = {table: passed_ends(watermark, interval) for table, (interval, _) in tables.items()}
                with ThreadPoolExecutor(len(tables)) as pool:
                    merges = {
                        table: pool.submit(
                            merge_bars,
                            spark,
                            table_uri(table),
                            with_complete(gold_bars(minute, interval, across_venues), watermark),
                            None if marked.get(table) == ends[table] else watermark,
                            days,
                            batch_id,
                        )
                        for table, (interval, across_venues) in tables.items()
                    }
                    for table, merge in merges.items():
                        merge.result()
                        marked[table] = ends[table]
            finally:
                conf.unset("spark.databricks.delta.write.txnAppId")
                conf.unset("spark.databricks.delta.write.txnVersion")
        finally:
            minute.unpersist()

    return write


def start(spark: SparkSession, settings: Settings) -> list[StreamingQuery]:
    trades = read_table(spark, settings.table_uri(SILVER_TABLE))
    return [write_batches(trades, settings, "gold", batch_writer(settings.table_uri, settings.gold_watermark))]


STAGE = Stage(start, "gold", SILVER_TABLE, tuple(gold_table(i, a) for i, a in GOLD_OUTPUTS))


def main() -> int:
    return run_layer("gold", STAGE)


if __name__ == "__main__":
    sys.exit(main())
