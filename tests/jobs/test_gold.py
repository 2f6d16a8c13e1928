import dataclasses
import random
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from pyspark.sql import DataFrame, SparkSession
from pyspark.testing import assertDataFrameEqual

from core.layers import GOLD_OUTPUTS, gold_table
from cryptolake.venue.synthetic import generate
from jobs import gold, schemas
from jobs.gold import bars, rollup
from jobs.runtime import WriteBatch
from tests import reference
from tests.jobs.rows import reference_bars

T0 = datetime(2024, 8, 8, 23, 54, 0)
SILVER_TIME = datetime(2024, 8, 8, 23, 55, 3)


def _trade(
    symbol: str,
    trade_id: str,
    price: str,
    size: str,
    second: float,
    side: str,
    offset: int = 0,
    index: int = 0,
    number: int | None = None,
) -> tuple[object, ...]:
    p, s = Decimal(price), Decimal(size)
    event_time = T0.replace(second=int(second), microsecond=round(second % 1 * 1e6))
    return ("binance", symbol, *symbol.split("-"), trade_id, number, p, s, p * s, side, event_time, event_time,
            "crypto.trades", 0, offset, index, SILVER_TIME, event_time.date())  # fmt: skip


def test_one_minute_bar_maths(spark: SparkSession) -> None:
    trades = spark.createDataFrame(
        [
            # Ids 10 and 9 share the first timestamp and have no trade numbers (silver files written before them):
            # 10 came first in Kafka, so it opens the bar.
            _trade("BTC-USDT", "10", "101", "2", 1.5, "buy", offset=1),
            _trade("BTC-USDT", "9", "100", "1", 1.5, "sell", offset=2),
            _trade("BTC-USDT", "11", "105", "0.5", 20, "buy", offset=3),
            _trade("BTC-USDT", "12", "99", "1.5", 59.999, "sell", offset=4),
        ],
        schemas.SILVER,
    )
    result = bars(trades, "1m").drop("date", "open_order", "close_order")
    quote = Decimal("202") + Decimal("100") + Decimal("52.5") + Decimal("148.5")
    expected = [
        (T0, T0.replace(minute=55), "binance", "BTC-USDT", Decimal(101), Decimal(105), Decimal(99), Decimal(99),
         Decimal(5), quote, float(quote / 5), 4, Decimal("2.5"), Decimal("2.5"), "10", "12"),
    ]  # fmt: skip
    assertDataFrameEqual(result, spark.createDataFrame(expected, result.schema))


def test_ties_in_time_follow_the_frames_where_the_venue_does_not_number_its_trades(spark: SparkSession) -> None:
    # Bybit's linear ids are UUIDs (no trade number): their text order says nothing. Three trades of one frame, and
    # one of the next frame, share a millisecond; the frames' own order opens and closes the bar.
    frame = [
        _trade("BTC-USDT", "f0c3", "100", "1", 7, "buy", offset=5, index=0),
        _trade("BTC-USDT", "0a1b", "101", "1", 7, "buy", offset=5, index=1),
        _trade("BTC-USDT", "9e2d", "102", "1", 7, "sell", offset=5, index=2),
    ]
    rows = [_trade("BTC-USDT", "00aa", "103", "1", 7, "sell", offset=6, index=0), *reversed(frame)]
    result = bars(spark.createDataFrame(rows, schemas.SILVER), "1m").first()
    assert (result.open, result.close, result.first_trade_id, result.last_trade_id) == (100, 103, "f0c3", "00aa")


def test_ties_in_time_follow_the_trade_numbers_where_the_venue_numbers_its_trades(spark: SparkSession) -> None:
    # Coinbase lists a frame's trades newest first, and a trade may arrive after a later one: by frame, 11 would open
    # and 9 close; as text, "10" would open and "9" close. By number, 9 opens and 11 closes.
    rows = [
        _trade("BTC-USDT", "11", "103", "1", 7, "buy", offset=4, index=0, number=11),
        _trade("BTC-USDT", "10", "101", "1", 7, "sell", offset=5, index=0, number=10),
        _trade("BTC-USDT", "9", "100", "1", 7, "sell", offset=5, index=1, number=9),
    ]
    made = bars(spark.createDataFrame(rows, schemas.SILVER), "1m")
    for result in (made.first(), rollup(made, "5m").first()):
        assert (result.open, result.close, result.first_trade_id, result.last_trade_id) == (100, 103, "9", "11")


def test_bars_split_by_minute_exchange_and_symbol(spark: SparkSession) -> None:
    eth = _trade("ETH-USDT", "1", "3000", "1", 5, "buy")
    rows = [
        _trade("BTC-USDT", "1", "100", "1", 5, "buy"),
        eth,
        ("okx", *eth[1:]),
    ]
    later = list(_trade("BTC-USDT", "2", "110", "1", 5, "sell"))
    later[10] = later[11] = T0.replace(minute=56, second=5)
    rows.append(tuple(later))
    result = bars(spark.createDataFrame(rows, schemas.SILVER), "1m")
    keys = sorted((r.bar_start.minute, r.exchange, r.symbol, r.trades) for r in result.collect())
    assert keys == [(54, "binance", "BTC-USDT", 1), (54, "binance", "ETH-USDT", 1), (54, "okx", "ETH-USDT", 1),
                    (56, "binance", "BTC-USDT", 1)]  # fmt: skip


def _silver_rows(trades: list[reference.Trade]) -> list[tuple[object, ...]]:
    rows = []
    for t in trades:
        moment = datetime(1970, 1, 1) + timedelta(microseconds=t.time_us)
        number = int(t.trade_id)  # synthetic venues number their trades in order, one a frame
        rows.append((t.exchange, t.symbol, *t.symbol.split("-"), t.trade_id, number, t.price, t.size,
                     t.price * t.size, t.side, moment, moment, "crypto.trades", 0, number, 0, SILVER_TIME,
                     moment.date()))  # fmt: skip
    return rows


@pytest.mark.parametrize(
    ("interval", "minutes", "rolled_up"),
    [("1m", 1, False), ("5m", 5, False), ("5m", 5, True), ("1h", 60, False), ("1h", 60, True)],
)
def test_bars_equal_the_reference_at_every_interval(
    spark: SparkSession, interval: str, minutes: int, rolled_up: bool
) -> None:
    trades = [
        reference.from_synthetic(t, exchange)
        for exchange, seed in (("binance", 1), ("okx", 2))
        for t in generate(["BTC-USDT", "ETH-USDT"], seed=seed, start_ms=1_723_161_255_342, rate=0.5, count=3_000)
    ]  # fmt: skip
    silver = spark.createDataFrame(_silver_rows(trades), schemas.SILVER)
    made = rollup(bars(silver, "1m"), interval) if rolled_up else bars(silver, interval)
    expected = reference.bars(trades, minutes)
    got = reference_bars(made)
    assert set(got) == set(expected) and made.count() == len(expected)
    for key, bar in expected.items():
        assert got[key] == dataclasses.replace(bar, vwap=pytest.approx(bar.vwap, rel=1e-12)), key


def test_bars_across_venues_pool_every_exchange(spark: SparkSession) -> None:
    rows = [
        _trade("BTC-USDT", "7", "100", "1", 1, "buy"),
        ("okx", *_trade("BTC-USDT", "7", "102", "3", 2, "sell")[1:]),
        ("okx", *_trade("BTC-USDT", "8", "101", "1", 3, "buy")[1:]),
    ]
    made = rollup(bars(spark.createDataFrame(rows, schemas.SILVER), "1m"), "1m", across_venues=True)
    result = made.drop("date", "open_order", "close_order")
    quote = Decimal(100 + 306 + 101)
    expected = [(T0, T0.replace(minute=55), "BTC-USDT", Decimal(100), Decimal(102), Decimal(100), Decimal(101),
                 Decimal(5), quote, float(quote / 5), 3, Decimal(2), Decimal(3), ["binance", "okx"])]  # fmt: skip
    assertDataFrameEqual(result, spark.createDataFrame(expected, result.schema))


def test_a_rollup_has_the_columns_and_types_of_bars_made_from_the_trades(spark: SparkSession) -> None:
    # Nullability aside: Spark writes every column of a file table as nullable.
    silver = spark.createDataFrame([_trade("BTC-USDT", "1", "100", "1", 5, "buy")], schemas.SILVER)
    made = rollup(bars(silver, "1m"), "5m").schema.simpleString()
    assert made == bars(silver, "5m").schema.simpleString()


def _write_batches(
    spark: SparkSession,
    lake: Path,
    batches: list[list[tuple[object, ...]]],
    first_id: int = 0,
    write: WriteBatch | None = None,
) -> None:
    """Gold's batch writer (a new one, as after a restart, unless ``write``) over ``batches`` of silver rows, with ids
    from ``first_id``, into tables under ``lake``."""
    write = write or gold.batch_writer(lambda table: str(lake / table), "10 seconds")
    for batch_id, rows in enumerate(batches, start=first_id):
        write(spark.createDataFrame(rows, schemas.SILVER), batch_id)


def _table(spark: SparkSession, lake: Path, interval: str = "1m", across_venues: bool = False) -> DataFrame:
    return spark.read.format("delta").load(str(lake / gold_table(interval, across_venues)))


def test_bars_merged_batch_by_batch_equal_the_reference_whatever_order_their_trades_come_in(
    spark: SparkSession, tmp_path: Path
) -> None:
    # Two venues, two symbols, 50 minutes across midnight (a new day and hour), in shuffled batches: most bars are
    # written by one batch and restated by the others.
    trades = [
        reference.from_synthetic(t, exchange)
        for exchange, seed in (("binance", 3), ("okx", 4))
        for t in generate(["BTC-USDT", "ETH-USDT"], seed=seed, start_ms=1_723_161_255_342, rate=0.5, count=1_500)
    ]  # fmt: skip
    rows = random.Random(5).sample(_silver_rows(trades), len(trades))
    batches = [rows[i::4] for i in range(4)]
    _write_batches(spark, tmp_path, batches)
    versions = {o: _table(spark, tmp_path, *o).count() for o in GOLD_OUTPUTS}
    # The last batch again, as after a failure before its commit: Delta skips what it wrote.
    _write_batches(spark, tmp_path, batches[-1:], first_id=3)
    assert {o: _table(spark, tmp_path, *o).count() for o in GOLD_OUTPUTS} == versions
    for interval, minutes in (("1m", 1), ("5m", 5), ("1h", 60)):
        made = _table(spark, tmp_path, interval)
        expected = reference.bars(trades, minutes)
        got = reference_bars(made)
        assert set(got) == set(expected) and made.count() == len(expected), interval
        for key, bar in expected.items():
            assert got[key] == dataclasses.replace(bar, vwap=pytest.approx(bar.vwap, rel=1e-12)), key
    pooled = reference.bars([dataclasses.replace(t, exchange="*") for t in trades])
    across = {
        (r.symbol, r.bar_start): (r.open, r.high, r.low, r.close, r.volume, r.trades, r.exchanges)
        for r in _table(spark, tmp_path, "1m", True).collect()
    }
    assert across == {
        (symbol, datetime(1970, 1, 1) + timedelta(microseconds=start)): (
            b.open, b.high, b.low, b.close, b.volume, b.trades,
            sorted({t.exchange for t in trades if (t.symbol, t.time_us // 60_000_000 * 60_000_000) == (symbol, start)}),
        )
        for (_, symbol, start), b in pooled.items()
    }  # fmt: skip


def _at(trade_id: int, price: str, minute: int, second: int) -> tuple[object, ...]:
    row = list(_trade("BTC-USDT", str(trade_id), price, "1", 0, "buy", offset=trade_id, number=trade_id))
    row[10] = row[11] = T0 + timedelta(minutes=minute, seconds=second)
    return tuple(row)


def test_a_bar_is_complete_once_the_watermark_passes_it_and_a_late_trade_restates_it(
    spark: SparkSession, tmp_path: Path
) -> None:
    write = gold.batch_writer(lambda table: str(tmp_path / table), "10 seconds")  # one run: no restart between
    _write_batches(spark, tmp_path, [[_at(1, "100", 0, 5), _at(2, "101", 1, 30)]], write=write)
    # Watermark 23:55:20 (newest trade less 10 s): the 23:54 bar is complete, the 23:55 one is not.
    assert {r.bar_start.minute: r.complete for r in _table(spark, tmp_path).collect()} == {54: True, 55: False}
    _write_batches(spark, tmp_path, [[_at(3, "102", 3, 30)]], first_id=1, write=write)
    # Watermark 23:57:20: the 23:55 bar, in no trade of this batch, is complete too.
    completed = {r.bar_start.minute: r.complete for r in _table(spark, tmp_path).collect()}
    assert completed == {54: True, 55: True, 57: False}
    before = spark.sql(f"DESCRIBE HISTORY delta.`{tmp_path / gold_table('1m')}`").first().version
    # A trade of 23:54:01, after its bar was complete: the bar is restated, and stays complete.
    _write_batches(spark, tmp_path, [[_at(0, "90", 0, 1)]], first_id=2, write=write)
    bar = _table(spark, tmp_path).where("bar_start = '2024-08-08 23:54:00'").first()
    assert (bar.open, bar.low, bar.close, bar.trades, bar.first_trade_id, bar.complete) == (90, 90, 100, 2, "0", True)
    five = _table(spark, tmp_path, "5m").where("bar_start = '2024-08-08 23:50:00'").first()
    assert (five.open, five.trades, five.first_trade_id) == (90, 1 + 1, "0")
    # The history keeps the bar as it was: the restatement is a version of its own.
    history = spark.sql(f"DESCRIBE HISTORY delta.`{tmp_path / gold_table('1m')}`").collect()
    assert history[0].operation == "MERGE" and history[0].version > before
    earlier = spark.read.format("delta").option("versionAsOf", before).load(str(tmp_path / gold_table("1m")))
    assert earlier.where("bar_start = '2024-08-08 23:54:00'").first().trades == 1
