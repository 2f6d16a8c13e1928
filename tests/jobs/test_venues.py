"""Every venue's recorded frames parse in Spark to exactly the trades, and make exactly the bars, of the tests'
independent plain-Python reading (tests/reference.py)."""

from __future__ import annotations

import dataclasses
import json
from collections import Counter
from typing import Any

import pytest
from pyspark.sql import DataFrame, SparkSession

from jobs.gold import bars, rollup
from jobs.silver import parse_trades, quarantined, valid_trades
from tests import reference
from tests.fixtures import recording
from tests.jobs.rows import bronze, bronze_row, reference_bars

# Sessions by the name of the venue and, for Bybit, its market: Bybit's linear ids are UUIDs, its spot ids numbers.
RECORDINGS = {
    "binance": "binance/spot_btcusdt_trade_combined_20240808.replay.jsonl",
    "coinbase": "coinbase/advanced_trade_market_trades.replay.jsonl",
    "bybit": "bybit/v5_spot_publicTrade_session.replay.jsonl",
    "bybit-linear": "bybit/v5_linear_publicTrade_session.replay.jsonl",
    "okx": "okx/v5_trades_session_20220513.replay.jsonl",
}
SESSIONS = ["binance", "kraken", "coinbase", "bybit", "bybit-linear", "okx"]

# Kraken WebSocket v2 has no public recording: frames as its documentation gives them (numbers, not strings). The
# last carries two trades of one pair at one instant, as a taker filling two makers makes them.
KRAKEN_FRAMES = [
    (1_695_628_177_800_000, '{"channel":"heartbeat"}'),
    (1_695_628_177_900_000, '{"channel":"trade","type":"snapshot","data":[{"symbol":"BTC/USD","side":"sell",'
     '"price":26385.1,"qty":0.00054215,"ord_type":"limit","trade_id":62187919,'
     '"timestamp":"2023-09-25T07:49:36.925603Z"}]}'),
    (1_695_628_178_000_000, '{"channel":"trade","type":"update","data":[{"symbol":"BTC/USD","side":"buy",'
     '"price":26385.2,"qty":0.1,"ord_type":"market","trade_id":62187920,"timestamp":"2023-09-25T07:49:37.708706Z"},'
     '{"symbol":"ETH/USD","side":"sell","price":1583.5,"qty":2.0,"ord_type":"market","trade_id":3912000,'
     '"timestamp":"2023-09-25T07:49:37.708706Z"}]}'),
    (1_695_628_178_100_000, '{"channel":"trade","type":"update","data":[{"symbol":"BTC/USD","side":"buy",'
     '"price":26385.3,"qty":0.2,"ord_type":"market","trade_id":62187921,"timestamp":"2023-09-25T07:49:38.000001Z"},'
     '{"symbol":"BTC/USD","side":"buy","price":26386,"qty":0.05,"ord_type":"market","trade_id":62187922,'
     '"timestamp":"2023-09-25T07:49:38.000001Z"}]}'),
]  # fmt: skip


def _exchange(session: str) -> str:
    return session.removesuffix("-linear")


def _key_symbol(session: str, raw: str) -> str:
    """What the ingestor keys a frame by, for venues whose frames name only the unsplit symbol (all in USDT here)."""
    message: dict[str, Any] = json.loads(raw)
    venue_symbol = message.get("stream", "").removesuffix("@trade") or message.get("topic", "").split(".")[-1]
    if not venue_symbol.upper().endswith("USDT"):
        return ""
    return f"{venue_symbol.upper().removesuffix('USDT')}-USDT" + ("-SWAP" if session == "bybit-linear" else "")


def _session(session: str) -> list[tuple[int, str]]:
    if session == "kraken":
        return KRAKEN_FRAMES
    frames = []
    for line in recording(RECORDINGS[session]).read_text().splitlines():
        entry = json.loads(line)
        if entry["dir"] == "recv":
            frames.append((int(entry["t"] * 1_000_000), entry["raw"]))
    return frames


def _bronze_and_reference(
    spark: SparkSession, session: str, frames: list[tuple[int, str]]
) -> tuple[DataFrame, list[reference.Trade], list[int]]:
    """The frames as bronze rows (offset: the frame's place in the session), the reference's trades of them, and the
    offsets of frames that are no trade frames."""
    exchange = _exchange(session)
    rows, expected, control_offsets = [], [], []
    for offset, (received_us, raw) in enumerate(frames):
        key_symbol = _key_symbol(session, raw)
        rows.append(bronze_row(raw, offset, key=f"{exchange}:{key_symbol}", exchange=exchange, received_us=received_us))
        trades = reference.trades_of(exchange, raw, key_symbol, offset)
        if trades is None:
            control_offsets.append(offset)
        else:
            expected += trades
    assert expected, "the session has trades"
    return bronze(spark, rows), expected, control_offsets


@pytest.mark.parametrize("session", SESSIONS)
def test_venue_frames_parse_like_the_reference(spark: SparkSession, session: str) -> None:
    frames, expected, control_offsets = _bronze_and_reference(spark, session, _session(session)[:400])
    parsed = parse_trades(frames)
    exchange = _exchange(session)
    got = [
        reference.Trade(r.exchange, r.symbol, r.trade_id, r.price, r.size, r.side,
                        int(r.event_time.timestamp()) * 1_000_000 + r.event_time.microsecond,
                        (exchange, r.trade_number) if r.trade_number is not None
                        else (exchange, r.offset, r.frame_index))
        for r in valid_trades(parsed, "10 minutes").collect()
    ]  # fmt: skip
    # Each trade, with its place in the venue's order: its number, or its frame's offset and its position in it.
    assert sorted(((t, t.order) for t in got), key=repr) == sorted(
        ((t, t.order) for t in reference.unique(expected)), key=repr
    )
    # Acks, heartbeats and subscription notices have no place in Kafka; if one comes, it is quarantined, not lost.
    reasons = {(r.offset, r.reject_reason) for r in quarantined(parsed).collect()}
    assert reasons == {(offset, "unparseable frame") for offset in control_offsets}


@pytest.mark.parametrize("session", SESSIONS)
def test_trades_of_one_instant_make_the_bars_of_the_reference(spark: SparkSession, session: str) -> None:
    """Whole sessions through silver's parse and gold's bars: open, close and the first and last ids of bars where
    several trades share a time follow the venue's real order (Coinbase lists a frame's trades newest first)."""
    frames, expected, _ = _bronze_and_reference(spark, session, _session(session))
    trades = reference.unique(expected)
    per_instant = Counter((t.symbol, t.time_us) for t in trades)
    assert max(per_instant.values()) > 1, "the session has trades that share a time"

    silver = valid_trades(parse_trades(frames), "10 minutes").cache()
    bars_1m = bars(silver, "1m")
    for minutes, gold in ((1, bars_1m), (5, bars(silver, "5m")), (5, rollup(bars_1m, "5m"))):
        got, want = reference_bars(gold), reference.bars(trades, minutes)
        assert set(got) == set(want), minutes
        for key, bar in want.items():
            assert got[key] == dataclasses.replace(bar, vwap=pytest.approx(bar.vwap, rel=1e-12)), (minutes, key)
    silver.unpersist()


def test_a_trade_frame_without_trades_is_quarantined(spark: SparkSession) -> None:
    empty = '{"arg":{"channel":"trades","instId":"BTC-USDT"},"data":[]}'
    parsed = parse_trades(bronze(spark, [bronze_row(empty, 0, key="okx:BTC-USDT", exchange="okx")]))
    assert [r.reject_reason for r in quarantined(parsed).collect()] == ["frame carries no trade"]
