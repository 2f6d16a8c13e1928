"""Bad input at volume: malformed variants of every venue's trade frame, through the ingestor's and silver's parsers."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
from pyspark.sql import DataFrame, Row, SparkSession
from pyspark.sql import functions as F

from bench import frames, workload
from core.layers import QUARANTINE_TABLE, SILVER_TABLE
from core.venues import FEEDS, LAKE_VENUES, FrameKind
from jobs import silver
from jobs.silver import deduplicated, parse_trades, quarantined, valid_trades
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

    # Every frame is accounted for: trades for silver, or a row in the quarantine (one at most), with a reason.
    assert {r.offset for r in kept} | {r.offset for r in rejected} == set(range(len(variants)))
    assert len({r.offset for r in rejected}) == len(rejected)
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


def _okx_frame(trades: list[dict[str, str]]) -> str:
    """An OKX trade frame, written here from the venue's documented shape rather than by the venue's ``render``."""
    return json.dumps({"arg": {"channel": "trades", "instId": "BTC-USDT"}, "data": trades}, separators=(",", ":"))


def _okx_trade(trade_id: int, price: str = "61000.5", side: str = "buy", pad: int = 0) -> dict[str, str]:
    trade = {"instId": "BTC-USDT", "tradeId": str(trade_id), "px": price, "sz": "0.25", "side": side}
    # A field no parser reads, to make the frame as big as a venue's largest.
    return {**trade, "ts": str(TRADE_US // 1000), **({"pad": "x" * pad} if pad else {})}


def _okx_bronze(spark: SparkSession, frames: list[str]) -> DataFrame:
    rows = [bronze_row(frame, offset, key="okx:BTC-USDT", exchange="okx") for offset, frame in enumerate(frames)]
    return bronze(spark, rows)


def _silver_batch(spark: SparkSession, parsed: DataFrame, tmp_path: Path) -> tuple[list[Row], list[Row]]:
    """Silver's tables after one batch of these parsed rows, written as silver writes them."""
    silver.batch_writer(lambda table: str(tmp_path / table))(deduplicated(parsed, "1 hour"), 0)
    read = [spark.read.format("delta").load(str(tmp_path / table)) for table in (SILVER_TABLE, QUARANTINE_TABLE)]
    return read[0].collect(), read[1].collect()


def test_a_frame_of_thousands_of_bad_trades_is_one_quarantine_row_with_their_count(
    spark: SparkSession, tmp_path: Path
) -> None:
    frame = _okx_frame([_okx_trade(trade_id, price="-61000.5", pad=120) for trade_id in range(5_000)])
    assert len(frame) >= malformed.MIB
    parsed = _okx_bronze(spark, [frame]).transform(parse_trades)
    # Counted before anything is written: a quarantine row per trade would be 5,000 copies of the frame, 5 GB.
    assert quarantined(parsed).count() == 1
    trades, rejected = _silver_batch(spark, parsed, tmp_path)
    assert trades == []
    assert [(r.offset, r.rejected_trades, r.reject_reason, r.reject_reasons) for r in rejected] == [
        (0, 5_000, "non-positive price or size", ["non-positive price or size"])
    ]
    assert bytes(rejected[0].value) == frame.encode()


def test_the_valid_trades_of_a_frame_go_to_silver_and_its_rejected_ones_to_one_quarantine_row(
    spark: SparkSession, tmp_path: Path
) -> None:
    frame = _okx_frame(
        [_okx_trade(1), _okx_trade(2, price="-1"), _okx_trade(3), _okx_trade(4, side="hold"), _okx_trade(5, "0")]
    )
    trades, rejected = _silver_batch(spark, _okx_bronze(spark, [frame, "[]"]).transform(parse_trades), tmp_path)
    assert sorted((r.trade_id, r.frame_index) for r in trades) == [("1", 0), ("3", 2)]
    assert sorted((r.offset, r.rejected_trades, r.reject_reason, r.reject_reasons) for r in rejected) == [
        (0, 3, "non-positive price or size", ["non-positive price or size", "missing or unknown taker side"]),
        (1, 0, "unparseable frame", ["unparseable frame"]),
    ]
