"""Every venue's recorded frames parse in Spark to exactly the trades a plain-Python reading finds."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pyspark.sql import SparkSession

from jobs.silver import parse_trades, quarantined, valid_trades
from tests import reference
from tests.fixtures import recording
from tests.jobs.rows import bronze, bronze_row

RECORDINGS = {
    "binance": "binance/spot_btcusdt_trade_combined_20240808.replay.jsonl",
    "coinbase": "coinbase/advanced_trade_market_trades.replay.jsonl",
    "bybit": "bybit/v5_spot_publicTrade_session.replay.jsonl",
    "okx": "okx/v5_trades_session_20220513.replay.jsonl",
}

# Kraken WebSocket v2 has no public recording: frames as its documentation gives them (numbers, not strings).
KRAKEN_FRAMES = [
    (1_695_628_177_800_000, '{"channel":"heartbeat"}'),
    (1_695_628_177_900_000, '{"channel":"trade","type":"snapshot","data":[{"symbol":"BTC/USD","side":"sell",'
     '"price":26385.1,"qty":0.00054215,"ord_type":"limit","trade_id":62187919,'
     '"timestamp":"2023-09-25T07:49:36.925603Z"}]}'),
    (1_695_628_178_000_000, '{"channel":"trade","type":"update","data":[{"symbol":"BTC/USD","side":"buy",'
     '"price":26385.2,"qty":0.1,"ord_type":"market","trade_id":62187920,"timestamp":"2023-09-25T07:49:37.708706Z"},'
     '{"symbol":"ETH/USD","side":"sell","price":1583.5,"qty":2.0,"ord_type":"market","trade_id":3912000,'
     '"timestamp":"2023-09-25T07:49:37.708706Z"}]}'),
]  # fmt: skip


def _key_symbol(exchange: str, raw: str) -> str:
    """What the ingestor keys a frame by, for venues whose frames name only the unsplit symbol."""
    message: dict[str, Any] = json.loads(raw)
    venue_symbol = message.get("stream", "").removesuffix("@trade") or message.get("topic", "").split(".")[-1]
    return {"btcusdt": "BTC-USDT", "BTCUSDT": "BTC-USDT", "ETHUSDT": "ETH-USDT"}.get(venue_symbol, "")


def _session(exchange: str) -> list[tuple[int, str]]:
    if exchange == "kraken":
        return KRAKEN_FRAMES
    frames = []
    for line in recording(RECORDINGS[exchange]).read_text().splitlines():
        entry = json.loads(line)
        if entry["dir"] == "recv":
            frames.append((int(entry["t"] * 1_000_000), entry["raw"]))
    return frames


@pytest.mark.parametrize("exchange", ["binance", "kraken", "coinbase", "bybit", "okx"])
def test_venue_frames_parse_like_the_reference(spark: SparkSession, exchange: str) -> None:
    session = _session(exchange)[:400]
    rows, expected, control_offsets = [], [], []
    for offset, (received_us, raw) in enumerate(session):
        key_symbol = _key_symbol(exchange, raw)
        rows.append(bronze_row(raw, offset, key=f"{exchange}:{key_symbol}", exchange=exchange, received_us=received_us))
        trades = reference.trades_of(exchange, raw, key_symbol, offset)
        if trades is None:
            control_offsets.append(offset)
        else:
            expected += trades
    assert expected, "the session has trades"

    parsed = parse_trades(bronze(spark, rows))
    got = [
        reference.Trade(r.exchange, r.symbol, r.trade_id, r.price, r.size, r.side,
                        int(r.event_time.timestamp()) * 1_000_000 + r.event_time.microsecond, (r.offset, r.frame_index))
        for r in valid_trades(parsed, "10 minutes").collect()
    ]  # fmt: skip
    # Each trade, with its place in the venue's order: the frame's offset and its position in the frame.
    assert sorted(((t, t.seq) for t in got), key=repr) == sorted(
        ((t, t.seq) for t in reference.unique(expected)), key=repr
    )
    # Acks, heartbeats and subscription notices have no place in Kafka; if one comes, it is quarantined, not lost.
    reasons = {(r.offset, r.reject_reason) for r in quarantined(parsed).collect()}
    assert reasons == {(offset, "unparseable frame") for offset in control_offsets}


def test_a_trade_frame_without_trades_is_quarantined(spark: SparkSession) -> None:
    empty = '{"arg":{"channel":"trades","instId":"BTC-USDT"},"data":[]}'
    parsed = parse_trades(bronze(spark, [bronze_row(empty, 0, key="okx:BTC-USDT", exchange="okx")]))
    assert [r.reject_reason for r in quarantined(parsed).collect()] == ["frame carries no trade"]
