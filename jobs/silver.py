"""Silver: bronze frames parsed into typed trades, deduplicated by trade id; bad rows go to quarantine."""

from __future__ import annotations

import sys
from dataclasses import dataclass

from pyspark.sql import Column, DataFrame, SparkSession, Window
from pyspark.sql import functions as F
from pyspark.sql.streaming.query import StreamingQuery
from pyspark.sql.types import DecimalType

from core.headers import BACKFILL_HEADER, EXCHANGE_HEADER, RECEIVED_HEADER, REPLAY_HEADER
from core.layers import BRONZE_TABLE, QUARANTINE_TABLE, SILVER_TABLE
from core.settings import Settings, duration_seconds
from core.venues import LAKE_VENUES
from jobs import schemas, venues
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


def _header(name: str) -> Column:
    return F.try_element_at(F.filter("headers", lambda h: h["key"] == name), F.lit(1))["value"].cast("string")


@dataclass(frozen=True)
class Bounds:
    """What silver takes as a plausible trade; docs/lake.md's "Quarantine" says why each is what it is."""

    max_future_seconds: int
    max_age_hours: int
    max_kafka_lead_seconds: float

    @classmethod
    def of(cls, settings: Settings) -> Bounds:
        return cls(
            settings.silver_max_future_seconds,
            settings.silver_max_age_hours,
            max_kafka_lead_seconds(settings.silver_watermark),
        )


def max_kafka_lead_seconds(watermark: str) -> float:
    """How far Kafka time may run ahead of silver's clock: half the dedup watermark (see ``dedup_clock``)."""
    return duration_seconds(watermark) / 2


def _typed(text: Column, kind: DecimalType) -> tuple[Column, Column]:
    """``text`` as ``kind``, and whether it is a number that ``kind`` holds exactly (within 30 digits of scale)."""
    value = text.try_cast(kind)
    wide = text.try_cast(DecimalType(38, 38 - (kind.precision - kind.scale)))
    return value, value.isNotNull() & (value == wide)


def _not_a_number(value: Column) -> Column:
    return value.isNull() | F.isnan(value) | (F.abs(value) == float("inf"))


def _checked(trade: Column, frame_index: Column, bounds: Bounds) -> Column:
    """One trade of a frame, typed (try_cast leaves null, not an error, where the venue sent something malformed),
    with ``reject_reason``: why it cannot be a silver trade (the first that applies, in this order), or null."""
    price, price_exact = _typed(trade["price"], schemas.PRICE)
    size, size_exact = _typed(trade["size"], schemas.SIZE)
    # An empty id or symbol is none at all.
    trade_id = F.nullif(trade["trade_id"], F.lit(""))
    side = F.when(trade["side"].isin("buy", "sell"), trade["side"])
    event_time, ingest_time = trade["event_time"], F.col("ingest_time")
    quote_amount = price * size
    price_number, size_number = trade["price"].try_cast("double"), trade["size"].try_cast("double")
    ahead_us = F.unix_micros(event_time) - F.unix_micros(ingest_time)
    # Recorded trades happened long before they are replayed, archived ones before they are backfilled: their age is
    # no clock error.
    too_old = (
        (~F.col("from_the_past") & (-ahead_us > bounds.max_age_hours * 3_600_000_000))
        if bounds.max_age_hours
        else F.lit(False)
    )
    # A Kafka time far ahead of silver's clock is a wrong clock on the ingestor's host: see ``dedup_clock``.
    kafka_lead_us = F.unix_micros("kafka_timestamp") - F.unix_micros(F.current_timestamp())
    future = f"event time more than {bounds.max_future_seconds} s after ingest time"
    old = f"event time more than {bounds.max_age_hours} h before ingest time"
    lead = f"Kafka time more than {bounds.max_kafka_lead_seconds:g} s ahead of silver's clock"
    reason = (
        F.when(trade_id.isNull(), "no trade id")
        .when(_not_a_number(price_number) | _not_a_number(size_number), "missing or malformed price or size")
        .when((price_number <= 0) | (size_number <= 0), "non-positive price or size")
        .when(~price_exact | ~size_exact, "price or size beyond the lake's range or precision")
        .when(quote_amount >= schemas.MAX_QUOTE_AMOUNT, "trade value beyond the lake's range")
        .when(side.isNull(), "missing or unknown taker side")
        .when(event_time.isNull(), "no event time")
        .when(ingest_time.isNull(), "no ingest time")
        .when(ahead_us > bounds.max_future_seconds * 1_000_000, future)
        .when(too_old, old)
        .when(kafka_lead_us > bounds.max_kafka_lead_seconds * 1_000_000, lead)
    )
    return F.struct(
        frame_index.alias("frame_index"),
        F.coalesce(F.nullif(trade["symbol"], F.lit("")), "key_symbol").alias("symbol"),
        trade_id.alias("trade_id"),
        trade["number"].alias("trade_number"),
        price.alias("price"),
        size.alias("size"),
        quote_amount.alias("quote_amount"),
        side.alias("side"),
        event_time.alias("event_time"),
        reason.alias("reject_reason"),
    )


def _entry(trade: Column, reason: Column, rejected_trades: Column, reasons: Column, value: Column) -> Column:
    """What becomes one row: a valid trade, or a frame's quarantine row (one type for both, to explode them once)."""
    return F.struct(
        trade.alias("trade"),
        reason.cast("string").alias("reject_reason"),
        rejected_trades.cast("int").alias("rejected_trades"),
        reasons.cast("array<string>").alias("reject_reasons"),
        value.cast("binary").alias("value"),
    )


def _frame_reject_reason() -> Column:
    """Why a frame has no trade to check, or null: anything but a trade frame of a known venue."""
    return (
        F.when(~F.col("exchange").isin(*LAKE_VENUES) | F.col("exchange").isNull(), "unknown exchange")
        .when(F.col("trades").isNull(), "unparseable frame")
        .when(F.size("trades") == 0, "frame carries no trade")
    )


def _entries() -> Column:
    """A frame's rows to be: its valid trades, then its quarantine row if it has a trade rejected or none to check.

    The quarantine row takes the first reason (the frame's own, or its first rejected trade's), the distinct reasons
    in the order they first occur, how many trades it rejected (0 when none could be read) and the raw frame.
    """
    frame_reason, rejected = F.col("frame_reason"), F.col("rejected")
    valid = F.transform(
        F.filter("checked", lambda trade: trade["reject_reason"].isNull()),
        lambda trade: _entry(trade, *[F.lit(None)] * 4),
    )
    first = F.try_element_at(rejected, F.lit(1))
    quarantine = _entry(
        first,
        F.coalesce(frame_reason, first["reject_reason"]),
        F.size(rejected),
        F.when(
            frame_reason.isNull(), F.array_distinct(F.transform(rejected, lambda trade: trade["reject_reason"]))
        ).otherwise(F.array(frame_reason)),
        F.col("value"),
    )
    return F.concat(valid, F.filter(F.array(quarantine), lambda row: row["reject_reason"].isNotNull()))


def parse_trades(bronze: DataFrame, bounds: Bounds | None = None) -> DataFrame:
    """Bronze rows -> one row per valid trade, typed, and one per frame with a trade rejected or none read: that
    frame's quarantine row, ``reject_reason`` set, with the raw frame in ``value`` (null on trades).

    Every bronze row gives at least one row, so none disappears; a frame of thousands of bad trades gives one row.
    """
    return (
        bronze
        # Step 1: venue, symbol, receive time and replay or backfill mark from the ingestor's key and headers.
        .select(
            "value",
            "topic",
            "partition",
            "offset",
            "kafka_timestamp",
            _header(EXCHANGE_HEADER).alias("exchange"),
            F.try_element_at(F.split(F.col("key").cast("string"), ":", 2), F.lit(2)).alias("key_symbol"),
            F.timestamp_micros(_header(RECEIVED_HEADER).try_cast("long")).alias("ingest_time"),
            F.coalesce((_header(REPLAY_HEADER) == "1") | (_header(BACKFILL_HEADER) == "1"), F.lit(False)).alias(
                "from_the_past"
            ),
        )
        # Step 2: parse each frame once, with its venue's parser.
        .transform(venues.with_trades, "exchange", "value")
        # Step 3: check each trade in its frame's row. Each step a column of its own: Spark computes it once, where
        # an expression written into several others would run once for each.
        .withColumn("frame_reason", _frame_reject_reason())
        .withColumn(
            "checked",
            F.transform(
                F.when(F.col("frame_reason").isNull(), F.col("trades")).otherwise(F.array()),
                lambda trade, index: _checked(trade, index, bounds or Bounds.of(Settings())),
            ),
        )
        .withColumn("rejected", F.filter("checked", lambda trade: trade["reject_reason"].isNotNull()))
        # Step 4: a row per valid trade and one for the frame's quarantine row, the only one to carry the frame.
        .select(
            "exchange",
            "key_symbol",
            "ingest_time",
            "topic",
            "partition",
            "offset",
            "kafka_timestamp",
            F.explode(_entries()).alias("entry"),
        )
        .select(
            "exchange",
            F.coalesce("entry.trade.symbol", "key_symbol").alias("symbol"),
            "entry.trade.trade_id",
            "entry.trade.trade_number",
            "entry.trade.price",
            "entry.trade.size",
            "entry.trade.quote_amount",
            "entry.trade.side",
            "entry.trade.event_time",
            "ingest_time",
            "topic",
            "partition",
            "offset",
            "entry.trade.frame_index",
            "kafka_timestamp",
            "entry.value",
            "entry.reject_reason",
            "entry.rejected_trades",
            "entry.reject_reasons",
        )
        .select(
            "exchange",
            "symbol",
            F.split("symbol", "-")[0].alias("base"),
            F.try_element_at(F.split("symbol", "-"), F.lit(2)).alias("quote"),
            "trade_id",
            "trade_number",
            "price",
            "size",
            "quote_amount",
            "side",
            "event_time",
            "ingest_time",
            "topic",
            "partition",
            "offset",
            "frame_index",
            # The batch's time: Spark keeps it in the checkpoint, so a batch run again gets the same.
            F.current_timestamp().alias("silver_time"),
            F.to_date("event_time").alias("date"),
            "value",
            "kafka_timestamp",
            "reject_reason",
            "rejected_trades",
            "reject_reasons",
        )
    )


def dedup_clock(max_kafka_lead_seconds: float) -> Column:
    """The clock silver deduplicates on: Kafka time, but never older than silver's own clock less the lead bound.

    Kafka time is the ingestor's clock, which venues cannot skew. Alone it could still leave a row below the
    watermark (partitions read far out of step in a catch-up), and Spark drops such rows. With the floor, and Kafka
    times at most the lead bound ahead of silver's clock (quarantined otherwise), every row is above the watermark
    (the latest clock less twice the bound) when it comes: no row is ever dropped, only its duplicates.
    """
    floor = F.current_timestamp() - F.expr(f"make_dt_interval(0, 0, 0, {max_kafka_lead_seconds})")
    return F.greatest(F.col("kafka_timestamp"), floor)


def deduplicated(parsed: DataFrame, watermark: str) -> DataFrame:
    """Parsed rows with each trade once: a copy within the watermark of the first is dropped; every quarantine row
    stays, but a second of the same bronze row (read again).

    A quarantine row's key is its bronze row's place in Kafka, which no trade has, so one stateful step serves both
    tables.
    """
    valid = F.col("reject_reason").isNull()
    lineage = [F.lit("bronze"), *(F.col(c).cast("string") for c in ("partition", "offset"))]
    rows = parsed.withColumn(
        "dedup_key", F.when(valid, F.array("exchange", "symbol", "trade_id")).otherwise(F.array(*lineage))
    )
    if not rows.isStreaming:
        # A batch is whole: no watermark needed to bound what it remembers; the first copy in Kafka order stays.
        first = Window.partitionBy("dedup_key").orderBy("partition", "offset", "frame_index")
        return rows.withColumn("_copy", F.row_number().over(first)).where("_copy = 1").drop("_copy", "dedup_key")
    return (
        rows.withColumn("dedup_time", dedup_clock(max_kafka_lead_seconds(watermark)))
        .withWatermark("dedup_time", watermark)
        .dropDuplicatesWithinWatermark(["dedup_key"])
        .drop("dedup_key", "dedup_time")
    )


def trades(rows: DataFrame) -> DataFrame:
    """Rows without a reject reason, as silver's trades."""
    return rows.where(F.col("reject_reason").isNull()).select(*schemas.SILVER.fieldNames())


def valid_trades(parsed: DataFrame, watermark: str) -> DataFrame:
    """Rows without a reject reason, each trade once."""
    return trades(deduplicated(parsed, watermark))


def quarantined(parsed: DataFrame) -> DataFrame:
    """Quarantine rows, one per frame: its first reason, the distinct ones and how many trades it rejected, with the
    raw frame and its Kafka lineage, dated by Kafka time."""
    return parsed.where(F.col("reject_reason").isNotNull()).select(
        "reject_reason",
        "reject_reasons",
        "rejected_trades",
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


def append(rows: DataFrame, uri: str, batch_id: int) -> None:
    """Append one batch's ``rows`` to the table at ``uri``, once: Delta skips a batch id silver wrote there before."""
    (
        rows.write.format("delta")
        .mode("append")
        .option("txnAppId", txn_app_id("silver"))
        .option("txnVersion", batch_id)
        # A table an earlier silver wrote gains the columns added since (the quarantine's counts): its rows read null.
        .option("mergeSchema", "true")
        .partitionBy("date")
        .save(uri)
    )


def batch_writer(table_uri: TableUri) -> WriteBatch:
    """Each batch's parsed rows -> silver's trades and quarantine, from one parse."""

    def write(rows: DataFrame, batch_id: int) -> None:
        # Step 1: keep the parsed batch: both tables come from it, and the counts too.
        rows.persist()
        try:
            # Step 2: how many of each, and the newest trade's time, for the batch's progress line.
            valid = F.col("reject_reason").isNull().alias("valid")
            counted = rows.groupBy(valid).agg(F.count(F.lit(1)), F.max("event_time")).collect()
            counts = {ok: (n, newest) for ok, n, newest in counted}
            COUNTS.record(
                "silver",
                batch_id,
                output_rows=counts.get(True, (0, None))[0],
                quarantined_rows=counts.get(False, (0, None))[0],
                newest_event=utc_text(counts.get(True, (0, None))[1]),
            )
            # Step 3: both tables, each write idempotent by batch id.
            append(trades(rows), table_uri(SILVER_TABLE), batch_id)
            append(quarantined(rows), table_uri(QUARANTINE_TABLE), batch_id)
        finally:
            rows.unpersist()

    return write


def start(spark: SparkSession, settings: Settings) -> list[StreamingQuery]:
    bronze = read_table(spark, settings.table_uri(BRONZE_TABLE))
    rows = deduplicated(parse_trades(bronze, Bounds.of(settings)), settings.silver_watermark)
    return [write_batches(rows, settings, "silver", batch_writer(settings.table_uri))]


STAGE = Stage(start, "silver", BRONZE_TABLE, (SILVER_TABLE, QUARANTINE_TABLE))


def main() -> int:
    return run_layer("silver", STAGE)


if __name__ == "__main__":
    sys.exit(main())
