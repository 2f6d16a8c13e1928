"""The whole pipeline on the real local services: synthetic venue -> ingestor -> Kafka -> bronze -> silver -> gold.

The venue sends a known sequence of trades; once they are all in, every gold table must hold exactly the bars a
plain-Python computation makes of the same trades, complete where the watermark has passed them, and silver must hold
each trade exactly once.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from bench import batchlog
from core.layers import BRONZE_TABLE, SILVER_TABLE
from core.settings import Settings
from cryptolake import lake
from cryptolake.runner import Pipeline, Source
from cryptolake.venue.synthetic import Trade, generate
from tests import reference
from tests.e2e.helpers import private_stack, us, wait_for, wait_for_gold

pytestmark = [pytest.mark.services, pytest.mark.e2e]

SYMBOLS = ("BTC-USDT", "ETH-USDT", "DOGE-USDT")
TRADES = 3_000
RATE = 12.0  # trades per second of event time: 3,000 trades span about four minutes
SEED = 7
VENUES = ("binance",)  # the checks below take every trade for Binance's
WATERMARK_S = 5


@pytest.fixture(scope="module", params=[True, False], ids=["jvm-per-layer", "one-jvm"])
def pipeline(services: Settings, request: pytest.FixtureRequest) -> Iterator[tuple[Pipeline, list[Trade]]]:
    settings = private_stack(services, "e2e", 2, symbols=SYMBOLS, gold_watermark=f"{WATERMARK_S} seconds")
    start_ms = int(time.time() * 1000) - 300_000  # in the past: event times stay near ingest times
    source = Source(kind="synthetic", count=TRADES, rate=RATE, seed=SEED, start_ms=start_ms, speed="max", venues=VENUES)
    trades = list(generate(SYMBOLS, seed=SEED, start_ms=start_ms, rate=RATE, count=TRADES))
    running = Pipeline(settings, source, jvm_per_layer=request.param)
    running.start()
    try:
        yield running, trades
    finally:
        running.stop()


def test_gold_bars_equal_a_plain_python_computation(pipeline: tuple[Pipeline, list[Trade]]) -> None:
    running, trades = pipeline
    expected = map(reference.from_synthetic, trades)
    wait_for_gold(running, expected, WATERMARK_S, "every gold table equal to the reference")
    assert running.restarts == dict.fromkeys(running.restarts, 0), "a layer failed and was restarted"


def rows_silver_read(running: Pipeline) -> int:
    """The rows silver's query has read from bronze in this run, from its batch lines."""
    running.poll_progress()
    started = running.progress.layers["silver"].started_at
    if started is None:
        return 0
    batches = batchlog.read(running.paths.logs)  # the logs keep earlier runs' lines too
    return sum(b.input_rows for b in batches if b.query == "silver" and b.end >= started)


def test_silver_holds_every_trade_once_and_bronze_every_frame_unchanged(
    pipeline: tuple[Pipeline, list[Trade]],
) -> None:
    running, trades = pipeline
    settings = running.settings
    # Once silver has read every frame, no batch is left that could add a duplicate.
    wait_for(running, lambda: rows_silver_read(running) >= TRADES, "silver reading every frame bronze wrote")
    assert running.restarts == dict.fromkeys(running.restarts, 0), "a batch run again would count its rows twice"

    silver = lake.read_table(settings, SILVER_TABLE).to_pylist()
    assert sorted((t["symbol"], int(t["trade_id"])) for t in silver) == sorted((t.symbol, t.trade_id) for t in trades)
    by_id = {(t.symbol, str(t.trade_id)): t for t in trades}
    for row in silver:
        trade = by_id[(row["symbol"], row["trade_id"])]
        assert (row["price"], row["size"]) == (trade.price, trade.size)
        assert row["side"] == ("sell" if trade.buyer_is_maker else "buy")
        assert us(row["event_time"]) == trade.time_ms * 1000

    bronze = lake.read_table(settings, BRONZE_TABLE)
    assert sorted(bronze["value"].to_pylist()) == sorted(t.frame().encode() for t in trades)
    assert set(bronze["key"].to_pylist()) == {f"binance:{s}".encode() for s in SYMBOLS}
