"""The whole pipeline on the real local services: synthetic venue -> ingestor -> Kafka -> bronze -> silver -> gold.

The venue sends a known sequence of trades; every finalised gold bar must equal a plain-Python computation from the
same trades, and silver must hold each trade exactly once.
"""

from __future__ import annotations

import time
import uuid
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from cryptolake import lake
from cryptolake.local.kafka import ensure_topic
from cryptolake.local.minio import ensure_bucket
from cryptolake.runner import Pipeline, Source
from cryptolake.settings import Settings
from ingestion.synthetic import Trade, generate

pytestmark = [pytest.mark.services, pytest.mark.e2e]

SYMBOLS = ("BTC-USDT", "ETH-USDT", "DOGE-USDT")
TRADES = 3_000
RATE = 12.0  # trades per second of event time: 3,000 trades span about four minutes
SEED = 7
WATERMARK_S = 5
DEADLINE_S = 480


@dataclass(frozen=True)
class Bar:
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: Decimal
    trades: int
    vwap: float


def reference_bars(trades: list[Trade]) -> dict[tuple[str, int], Bar]:
    """(symbol, bar start in ms) -> the bar, computed without Spark."""
    groups: dict[tuple[str, int], list[Trade]] = defaultdict(list)
    for trade in trades:
        groups[(trade.symbol, trade.time_ms // 60_000 * 60_000)].append(trade)
    bars = {}
    for key, group in groups.items():
        ordered = sorted(group, key=lambda t: (t.time_ms, t.trade_id))
        volume = sum((t.size for t in group), Decimal(0))
        quote = sum((t.price * t.size for t in group), Decimal(0))
        bars[key] = Bar(
            open=ordered[0].price,
            high=max(t.price for t in group),
            low=min(t.price for t in group),
            close=ordered[-1].price,
            volume=volume,
            trades=len(group),
            vwap=float(quote / volume),
        )
    return bars


@pytest.fixture(scope="module")
def pipeline(services: Settings) -> Iterator[tuple[Pipeline, list[Trade]]]:
    run = uuid.uuid4().hex[:8]
    settings = services.with_(
        kafka_topic=f"e2e-{run}",
        lake_bucket=f"e2e-{run}",
        symbols=SYMBOLS,
        trigger_interval="2 seconds",
        gold_watermark=f"{WATERMARK_S} seconds",
        shuffle_partitions=2,
    )
    ensure_topic(settings, partitions=2)
    ensure_bucket(settings)
    start_ms = int(time.time() * 1000) - 300_000  # in the past: event times stay near ingest times
    source = Source(kind="synthetic", count=TRADES, rate=RATE, seed=SEED, start_ms=start_ms, speed="max")
    trades = list(generate(SYMBOLS, seed=SEED, start_ms=start_ms, rate=RATE, count=TRADES))
    running = Pipeline(settings, source)
    running.start()
    try:
        yield running, trades
    finally:
        running.stop()


def _wait(running: Pipeline, done: object, what: str) -> None:
    deadline = time.monotonic() + DEADLINE_S
    while time.monotonic() < deadline:
        failed = running.failed()
        assert not failed, f"{failed} exited; logs in {running.paths.logs}"
        if callable(done) and done():
            return
        time.sleep(5)
    pytest.fail(f"{what} not reached within {DEADLINE_S}s; logs in {running.paths.logs}")


def test_gold_bars_equal_a_plain_python_computation(pipeline: tuple[Pipeline, list[Trade]]) -> None:
    running, trades = pipeline
    settings = running.settings
    expected = reference_bars(trades)
    # A bar is final once the watermark, the latest event time less the delay, has passed its end.
    watermark_ms = max(t.time_ms for t in trades) - WATERMARK_S * 1000
    final = {key for key in expected if key[1] + 60_000 <= watermark_ms}
    assert len(final) >= 3 * len(SYMBOLS)

    def gold_keys() -> set[tuple[str, int]]:
        bars = lake.read_bars(settings)
        return {(b["symbol"], _ms(b["bar_start"])) for b in bars.to_pylist()}

    _wait(running, lambda: final <= gold_keys(), "every final bar in gold")

    gold = lake.read_bars(settings).to_pylist()
    got = {(b["symbol"], _ms(b["bar_start"])): b for b in gold}
    assert set(got) == final, "gold holds a bar that is not final, or twice"
    assert len(gold) == len(got)
    for key in sorted(final):
        bar, want = got[key], expected[key]
        assert (bar["exchange"], _ms(bar["bar_end"])) == ("binance", key[1] + 60_000)
        assert (bar["open"], bar["high"], bar["low"], bar["close"]) == (want.open, want.high, want.low, want.close)
        assert (bar["volume"], bar["trades"]) == (want.volume, want.trades), key
        assert bar["vwap"] == pytest.approx(want.vwap, rel=1e-9), key


def test_silver_holds_every_trade_once_and_bronze_every_frame_unchanged(
    pipeline: tuple[Pipeline, list[Trade]],
) -> None:
    running, trades = pipeline
    settings = running.settings
    _wait(running, lambda: lake.read_table(settings, "silver/trades").num_rows >= TRADES, "all trades in silver")
    time.sleep(6)  # a few more batches: a duplicate would show up now

    silver = lake.read_table(settings, "silver/trades").to_pylist()
    assert sorted((t["symbol"], int(t["trade_id"])) for t in silver) == sorted((t.symbol, t.trade_id) for t in trades)
    by_id = {(t.symbol, str(t.trade_id)): t for t in trades}
    for row in silver:
        trade = by_id[(row["symbol"], row["trade_id"])]
        assert (row["price"], row["size"]) == (trade.price, trade.size)
        assert row["side"] == ("sell" if trade.buyer_is_maker else "buy")
        assert _ms(row["event_time"]) == trade.time_ms

    bronze = lake.read_table(settings, "bronze/trades")
    assert sorted(bronze["value"].to_pylist()) == sorted(t.binance_frame().encode() for t in trades)
    assert set(bronze["key"].to_pylist()) == {f"binance:{s}".encode() for s in SYMBOLS}


def _ms(moment: datetime) -> int:
    return int(moment.replace(tzinfo=moment.tzinfo or UTC).timestamp() * 1000)
