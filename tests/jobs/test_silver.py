from datetime import datetime
from decimal import Decimal

from pyspark.sql import SparkSession
from pyspark.testing import assertDataFrameEqual

from jobs import schemas, venues
from jobs.silver import parse_trades, quarantined, valid_trades
from tests.fixtures import received_frames
from tests.jobs.rows import RECEIVED_US, bronze, bronze_row

BTC = "binance/spot_btcusdt_trade_combined_20240808.replay.jsonl"


def _recorded(count: int) -> list[str]:
    frames = received_frames(BTC)
    return [next(frames) for _ in range(count)]


def test_recorded_binance_frames_become_typed_trades(spark: SparkSession) -> None:
    first, second = _recorded(2)
    parsed = parse_trades(bronze(spark, [bronze_row(first, 0), bronze_row(second, 1)]))
    received = datetime(2024, 8, 8, 23, 54, 16)
    expected = [
        # {"t":3735683259,"p":"61837.63000000","q":"0.02000000","T":1723161255342,"m":true}: the taker sold.
        ("binance", "BTC-USDT", "BTC", "USDT", "3735683259", Decimal("61837.63"), Decimal("0.02"),
         Decimal("1236.7526"), "sell", datetime(2024, 8, 8, 23, 54, 15, 342000), received, "crypto.trades", 0, 0),
        ("binance", "BTC-USDT", "BTC", "USDT", "3735683260", Decimal("61837.63"), Decimal("0.048"),
         Decimal("2968.20624"), "sell", datetime(2024, 8, 8, 23, 54, 15, 617000), received, "crypto.trades", 0, 1),
    ]  # fmt: skip
    columns = schemas.SILVER.fieldNames()[:-1]  # all but the date partition
    assertDataFrameEqual(parsed.select(*columns), spark.createDataFrame(expected, parsed.select(*columns).schema))
    assert parsed.where("reject_reason is not null").count() == 0


def test_each_kind_of_bad_row_is_quarantined_with_its_reason(spark: SparkSession) -> None:
    good = _recorded(1)[0]
    far_future_us = RECEIVED_US + 3 * 86_400 * 1_000_000
    rows = [
        bronze_row("{not json", 1),
        bronze_row(good, 2, exchange="mtgox", key="mtgox:BTC-USD"),
        bronze_row(good, 3, exchange=None),
        bronze_row('{"stream":"btcusdt@trade","data":{"p":"1","q":"1","T":1723161255342,"m":true}}', 4),
        bronze_row('{"stream":"btcusdt@trade","data":{"t":7,"p":"0","q":"1","T":1723161255342,"m":true}}', 5),
        bronze_row('{"stream":"btcusdt@trade","data":{"t":8,"p":"1","q":"-2","T":1723161255342,"m":false}}', 6),
        bronze_row('{"stream":"btcusdt@trade","data":{"t":9,"p":"abc","q":"1","T":1723161255342,"m":true}}', 7),
        bronze_row(good, 8, received_us=far_future_us),
        bronze_row(good, 9),
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
        (8, "event time more than 24 h from ingest time"),
    ]
    assertDataFrameEqual(reasons, spark.createDataFrame(expected, reasons.schema))
    # Nothing is dropped silently: every row is a trade or a quarantine row.
    assert valid_trades(parsed, "10 minutes").select("offset").collect() == [(9,)]


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
    assert plan.count("from_json(") == len(venues.PARSERS)
