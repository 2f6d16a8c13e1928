import time
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from pyspark.sql import SparkSession
from pyspark.testing import assertDataFrameEqual

from core.layers import QUARANTINE_TABLE, SILVER_TABLE
from core.venues import LAKE_VENUES
from jobs import schemas, silver
from jobs.silver import Bounds, deduplicated, parse_trades, quarantined, valid_trades
from tests.fixtures import received_frames
from tests.jobs.rows import RECEIVED_US, bronze, bronze_row

BTC = "binance/spot_btcusdt_trade_combined_20240808.replay.jsonl"
LEAD = {"max_kafka_lead_seconds": 300.0}


def _recorded(count: int) -> list[str]:
    frames = received_frames(BTC)
    return [next(frames) for _ in range(count)]


def test_recorded_binance_frames_become_typed_trades(spark: SparkSession) -> None:
    first, second = _recorded(2)
    parsed = parse_trades(bronze(spark, [bronze_row(first, 0), bronze_row(second, 1)]))
    received = datetime(2024, 8, 8, 23, 54, 16)
    expected = [
        # {"t":3735683259,"p":"61837.63000000","q":"0.02000000","T":1723161255342,"m":true}: the taker sold.
        ("binance", "BTC-USDT", "BTC", "USDT", "3735683259", 3735683259, Decimal("61837.63"), Decimal("0.02"),
         Decimal("1236.7526"), "sell", datetime(2024, 8, 8, 23, 54, 15, 342000), received, "crypto.trades", 0, 0, 0),
        ("binance", "BTC-USDT", "BTC", "USDT", "3735683260", 3735683260, Decimal("61837.63"), Decimal("0.048"),
         Decimal("2968.20624"), "sell", datetime(2024, 8, 8, 23, 54, 15, 617000), received, "crypto.trades", 0, 1, 0),
    ]  # fmt: skip
    columns = schemas.SILVER.fieldNames()[:-2]  # all but the batch's time and the date partition
    assertDataFrameEqual(parsed.select(*columns), spark.createDataFrame(expected, parsed.select(*columns).schema))
    assert parsed.where("reject_reason is not null").count() == 0


def _binance(trade_id: int, price: str, size: str, trade_time: int = 1723161255342) -> str:
    data = f'"t":{trade_id},"p":"{price}","q":"{size}","T":{trade_time},"m":true'
    return f'{{"stream":"btcusdt@trade","data":{{{data}}}}}'


def test_each_kind_of_bad_row_is_quarantined_with_its_reason(spark: SparkSession) -> None:
    good = _recorded(1)[0]
    hour_us = 3_600 * 1_000_000
    rows = [
        bronze_row("{not json", 1),
        bronze_row(good, 2, exchange="mtgox", key="mtgox:BTC-USD"),
        bronze_row(good, 3, exchange=None),
        bronze_row('{"stream":"btcusdt@trade","data":{"p":"1","q":"1","T":1723161255342,"m":true}}', 4),
        bronze_row(_binance(7, "0", "1"), 5),
        bronze_row(_binance(8, "1", "-2"), 6),
        bronze_row(_binance(9, "abc", "1"), 7),
        # Stamped an hour after it was received: a wrong clock, which would move the watermarks.
        bronze_row(good, 8, received_us=RECEIVED_US - hour_us),
        bronze_row(good, 9),
        bronze_row(_binance(10, "NaN", "1"), 10),
        bronze_row(_binance(11, "1.00000000001", "1"), 11),
        bronze_row(_binance(12, "100000000", "1"), 12),
        bronze_row(_binance(13, "1", "0.000000001"), 13),
        bronze_row(_binance(14, "99999999", "100000"), 14),
        bronze_row(good, 15, received_us=RECEIVED_US + 25 * hour_us),
        bronze_row(good, 16, received_us=None),
        # The ingestor's clock years ahead of silver's: it would hold up deduplication.
        bronze_row(good, 17, kafka_us=RECEIVED_US + 20 * 365 * 24 * hour_us),
    ]
    parsed = parse_trades(bronze(spark, rows))
    reasons = quarantined(parsed).select("offset", "reject_reason")
    expected = [
        (1, "unparseable frame"),
        (2, "unknown exchange"),
        (3, "unknown exchange"),
        (4, "no trade id"),
        (5, "non-positive price or size"),
        (6, "non-positive price or size"),
        (7, "missing or malformed price or size"),
        (8, "event time more than 10 s after ingest time"),
        (10, "missing or malformed price or size"),
        (11, "price or size beyond the lake's range or precision"),
        (12, "price or size beyond the lake's range or precision"),
        (13, "price or size beyond the lake's range or precision"),
        (14, "trade value beyond the lake's range"),
        (15, "event time more than 24 h before ingest time"),
        (16, "no ingest time"),
        (17, "Kafka time more than 300 s ahead of silver's clock"),
    ]
    assertDataFrameEqual(reasons, spark.createDataFrame(expected, reasons.schema))
    # Nothing is dropped silently: every row is a trade or a quarantine row.
    assert valid_trades(parsed, "10 minutes").select("offset").collect() == [(9,)]


def test_the_bounds_are_settings(spark: SparkSession) -> None:
    late = bronze_row(_recorded(1)[0], 1, received_us=RECEIVED_US + 3 * 3_600 * 1_000_000)
    early = bronze_row(_binance(2, "1", "1", trade_time=1723161256000 + 8_000), 2)
    parsed = parse_trades(bronze(spark, [late, early]), Bounds(max_future_seconds=5, max_age_hours=2, **LEAD))
    assert sorted(r.reject_reason for r in parsed.collect()) == [
        "event time more than 2 h before ingest time",
        "event time more than 5 s after ingest time",
    ]
    unbounded = Bounds(max_future_seconds=5, max_age_hours=0, **LEAD)
    assert parse_trades(bronze(spark, [late]), unbounded).first().reject_reason is None


@pytest.mark.parametrize("mark", ["replay", "backfill"])
def test_replayed_and_backfilled_trades_are_exempt_from_the_age_bound_only(spark: SparkSession, mark: str) -> None:
    day_us = 86_400 * 1_000_000
    rows = [
        bronze_row(_recorded(1)[0], 1, received_us=RECEIVED_US + 800 * day_us, **{mark: True}),
        bronze_row(_recorded(1)[0], 2, received_us=RECEIVED_US - day_us, **{mark: True}),
        bronze_row(_recorded(1)[0], 3, received_us=RECEIVED_US + 800 * day_us),
    ]
    assert [r.reject_reason for r in parse_trades(bronze(spark, rows)).orderBy("offset").collect()] == [
        None,
        "event time more than 10 s after ingest time",
        "event time more than 24 h before ingest time",
    ]


def test_sizes_of_meme_coins_and_small_prices_are_kept_exactly(spark: SparkSession) -> None:
    rows = [bronze_row(_binance(1, "0.0000001234", "98765432109.12345678"), 1)]
    trade = valid_trades(parse_trades(bronze(spark, rows)), "10 minutes").first()
    assert (trade.price, trade.size) == (Decimal("0.0000001234"), Decimal("98765432109.12345678"))
    assert trade.quote_amount == Decimal("0.0000001234") * Decimal("98765432109.12345678")


def test_quarantine_keeps_the_raw_frame(spark: SparkSession) -> None:
    parsed = parse_trades(bronze(spark, [bronze_row("{not json", 1)]))
    assert quarantined(parsed).select("value").first()[0] == bytearray(b"{not json")


def test_a_trade_seen_twice_is_kept_once(spark: SparkSession) -> None:
    first, second = _recorded(2)
    rows = [bronze_row(first, 0), bronze_row(second, 1), bronze_row(first, 2)]
    trades = valid_trades(parse_trades(bronze(spark, rows)), "10 minutes")
    assert sorted(r.trade_id for r in trades.select("trade_id").collect()) == ["3735683259", "3735683260"]


def test_each_frame_is_parsed_by_one_from_json_per_venue(spark: SparkSession) -> None:
    # Spark does not share a subexpression inside a CASE branch: a parse referenced by several fields would run once
    # per field (it did, and cost silver more than half its time).
    parsed = parse_trades(bronze(spark, [bronze_row(_recorded(1)[0], 0)]))
    plan = parsed._jdf.queryExecution().optimizedPlan().toString()
    assert plan.count("from_json(") == len(LAKE_VENUES)


def _run_silver_stream(spark: SparkSession, source: Path, work: Path) -> None:
    """One silver run over what the Delta table ``source`` holds now, resuming from the checkpoint in ``work``."""
    rows = deduplicated(parse_trades(spark.readStream.format("delta").load(str(source))), "10 minutes")
    query = (
        rows.writeStream.foreachBatch(silver.batch_writer(lambda table: str(work / table)))
        .option("checkpointLocation", str(work / "checkpoint"))
        .trigger(availableNow=True)
        .start()
    )
    query.awaitTermination()


def test_silver_keeps_every_trade_however_old_its_kafka_time_and_drops_copies(
    spark: SparkSession, tmp_path: Path
) -> None:
    now_us = time.time_ns() // 1000
    minute_us = 60 * 1_000_000

    def row(trade_id: int, offset: int, kafka_us: int) -> tuple[Any, ...]:
        frame = _binance(trade_id, "100", "1", trade_time=now_us // 1000)
        return bronze_row(frame, offset, received_us=now_us, kafka_us=kafka_us)

    source = tmp_path / "bronze"
    bronze(spark, [row(1, 0, now_us)]).write.format("delta").mode("append").save(str(source))
    _run_silver_stream(spark, source, tmp_path)
    # A later batch: a copy of trade 1 three minutes on in Kafka, and a trade whose Kafka time is an hour older than
    # the first's (a partition read far behind the others). Spark drops a row below the watermark: not this one.
    # And a frame that is no JSON, twice (two Kafka records): both go to quarantine, neither is a copy of the other.
    later = [row(1, 1, now_us + 3 * minute_us), row(2, 2, now_us - 60 * minute_us)]
    broken = [bronze_row("{not json", offset, received_us=now_us) for offset in (3, 4)]
    bronze(spark, later + broken).write.format("delta").mode("append").save(str(source))
    _run_silver_stream(spark, source, tmp_path)
    trades = spark.read.format("delta").load(str(tmp_path / SILVER_TABLE))
    assert sorted((r.trade_id, r.offset) for r in trades.collect()) == [("1", 0), ("2", 2)]
    rejected = spark.read.format("delta").load(str(tmp_path / QUARANTINE_TABLE))
    assert sorted((r.offset, r.reject_reason) for r in rejected.collect()) == [
        (3, "unparseable frame"),
        (4, "unparseable frame"),
    ]


def test_a_batch_written_again_adds_nothing_to_either_table(spark: SparkSession, tmp_path: Path) -> None:
    rows = parse_trades(bronze(spark, [bronze_row(_recorded(1)[0], 0), bronze_row("[]", 1)]))
    write = silver.batch_writer(lambda table: str(tmp_path / table))
    for batch_id in (0, 0, 1):  # batch 0 again, as after a failure before its commit; then a new batch
        write(rows, batch_id)
    counts = [spark.read.format("delta").load(str(tmp_path / t)).count() for t in (SILVER_TABLE, QUARANTINE_TABLE)]
    assert counts == [2, 2]


def test_a_quarantine_written_before_its_counts_existed_takes_the_new_rows(spark: SparkSession, tmp_path: Path) -> None:
    broken = parse_trades(bronze(spark, [bronze_row("{not json", 1)]))
    older = quarantined(broken).drop("rejected_trades", "reject_reasons")
    older.write.format("delta").partitionBy("date").save(str(tmp_path / QUARANTINE_TABLE))
    silver.batch_writer(lambda table: str(tmp_path / table))(parse_trades(bronze(spark, [bronze_row("{", 2)])), 0)
    rows = spark.read.format("delta").load(str(tmp_path / QUARANTINE_TABLE)).collect()
    assert sorted((r.offset, r.rejected_trades, r.reject_reason) for r in rows) == [
        (1, None, "unparseable frame"),
        (2, 0, "unparseable frame"),
    ]
