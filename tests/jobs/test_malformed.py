"""Bad input at volume: malformed variants of every venue's trade frame, through the ingestor's and silver's parsers."""

from __future__ import annotations

from collections import Counter

import pytest
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from bench import frames, workload
from core.venues import FEEDS, LAKE_VENUES, FrameKind
from jobs.silver import parse_trades, quarantined, valid_trades
from tests import malformed
from tests.jobs.rows import RECEIVED_US, bronze, bronze_row

TRADES = (workload.Trade(1_000_001, 61_000.5, 0.25, True), workload.Trade(1_000_002, 61_000.75, 0.5, False))
TRADE_US = RECEIVED_US - 1_000_000


def _variants(venue: str) -> list[tuple[str, str]]:
    frame = frames.render(workload.Burst(venue, "BTC-USDT", 2, 0.0, TRADES), TRADE_US)[0]
    return list(malformed.variants(frame))


@pytest.mark.parametrize("venue", sorted(LAKE_VENUES))
def test_the_ingestor_reads_every_malformed_frame_without_raising(venue: str) -> None:
    exchange = FEEDS[venue](["BTC-USDT"])
    kinds = Counter(exchange.classify(text)[0] for _, text in _variants(venue))
    assert sum(kinds.values()) >= 50
    # Unreadable frames are errors the ingestor counts and logs, not forwarded; the rest go to Kafka for silver.
    assert kinds[FrameKind.ERROR] > 0 and kinds[FrameKind.TRADE] > 0


@pytest.mark.parametrize("venue", sorted(LAKE_VENUES))
def test_silver_quarantines_or_keeps_every_malformed_frame_and_loses_nothing(spark: SparkSession, venue: str) -> None:
    variants = _variants(venue)
    key = f"{venue}:BTC-USDT"
    rows = [bronze_row(text, offset, key=key, exchange=venue) for offset, (_, text) in enumerate(variants)]
    parsed = parse_trades(bronze(spark, rows)).cache()
    # Before deduplication: many variants still carry the sample's trades, which silver then keeps once.
    kept = parsed.where("reject_reason is null").collect()
    rejected = quarantined(parsed).select("offset", "reject_reason").collect()
    assert valid_trades(parsed, "10 minutes").count() == len({(r.symbol, r.trade_id) for r in kept})
    parsed.unpersist()

    # Every frame is accounted for: trades for silver, or rows in the quarantine, each with a reason.
    assert {r.offset for r in kept} | {r.offset for r in rejected} == set(range(len(variants)))
    assert all(r.reject_reason for r in rejected)
    # What silver keeps is a well-formed trade, whatever the frame around it.
    for trade in kept:
        assert trade.price > 0 and trade.size > 0 and trade.side in ("buy", "sell"), variants[trade.offset][0]
        assert trade.trade_id and trade.symbol and trade.event_time is not None, variants[trade.offset][0]
    # A variant that breaks a price, a size or the frame's shape is quarantined for it.
    broken = {o for o, (what, _) in enumerate(variants) if what.startswith(("truncated", "not JSON", "nested garbage"))}
    assert broken <= {r.offset for r in rejected} and not broken & {r.offset for r in kept}


def test_an_unknown_venue_is_quarantined(spark: SparkSession) -> None:
    frame = _variants("binance")[0][1]
    parsed = parse_trades(bronze(spark, [bronze_row(frame, 0, key="mtgox:BTC-USD", exchange="mtgox")]))
    assert quarantined(parsed).select(F.col("reject_reason")).first()[0] == "unknown exchange"
