"""``cryptolake replay`` of every recorded session (and of Kraken v2 frames built from its docs) into Kafka:
each trade frame lands once, byte for byte, keyed by venue and symbol, with the venue and receive-time headers."""

from __future__ import annotations

import json
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from core.settings import Settings
from cryptolake.cli import main
from cryptolake.local.kafka import ensure_topic
from cryptolake.venue.recordings import Writer
from tests.fixtures import FIXTURES
from tests.ingestion.frames import kraken_session
from tests.ingestion.kafka_topic import read_topic

pytestmark = pytest.mark.services

# The venues' spellings in the captures, mapped by hand: an oracle independent of the ingestor's own mapping.
BINANCE = {"btcusdt@trade": "BTC-USDT", "ethusdt@trade": "ETH-USDT"}
BYBIT = {"BTCUSDT": "BTC-USDT", "ETHUSDT": "ETH-USDT", "SOLUSDT": "SOL-USDT", "DOGEUSDT": "DOGE-USDT"}


def expected_key(path: Path, frame: str) -> str | None:
    """``venue:SYMBOL`` of a trade frame of the recording at ``path``; None for every other frame."""
    venue, message = path.parent.name, json.loads(frame)
    key = _key(venue, path.name, message)
    return None if key is None else str(key)


def _key(venue: str, name: str, message: Any) -> Any:
    if venue == "binance":
        return f"binance:{BINANCE[message['stream']]}" if message.get("stream", "").endswith("@trade") else None
    if venue == "bybit":
        swap = "-SWAP" if "linear" in name else ""
        topic = message.get("topic")
        return f"bybit:{BYBIT[topic.removeprefix('publicTrade.')]}{swap}" if topic else None
    if venue == "coinbase":
        trades = [t for e in message.get("events", []) for t in e.get("trades", [])]
        if message.get("channel") == "market_trades" and trades:
            return f"coinbase:{trades[0]['product_id']}"
        return f"coinbase:{message['product_id']}" if message.get("type") in ("match", "last_match") else None
    if venue == "kraken":
        if isinstance(message, list):
            return "kraken:" + message[-1].replace("XBT", "BTC").replace("/", "-")
        return f"kraken:{message['data'][0]['symbol'].replace('/', '-')}" if message.get("channel") == "trade" else None
    if venue == "okx":
        return f"okx:{message['arg']['instId']}" if "data" in message else None
    raise AssertionError(f"no oracle for {venue}/{name}: extend _key")


def kraken_v2_capture(folder: Path) -> Path:
    """A Kraken WebSocket v2 session as its documentation describes it (no real one is recorded)."""
    path = folder / "kraken" / "v2_trade_from_docs.replay.jsonl"
    path.parent.mkdir()
    with path.open("w") as out:
        writer = Writer(out)
        writer.write("send", '{"method":"subscribe","params":{"channel":"trade","symbol":["BTC/USD","ETH/USD"]}}')
        for frame in kraken_session({"BTC/USD": 74315800, "ETH/USD": 2213000}):
            writer.write("recv", frame)
    return path


def test_every_capture_replays_into_kafka_byte_for_byte(
    services: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    captures = [*sorted(FIXTURES.glob("*/*.replay.jsonl")), kraken_v2_capture(tmp_path)]
    assert {p.parent.name for p in captures} == {"binance", "bybit", "coinbase", "kraken", "okx"}
    expected: Counter[tuple[str, bytes, bytes]] = Counter()
    for path in captures:
        for line in path.read_text().splitlines():
            entry = json.loads(line)
            key = expected_key(path, entry["raw"]) if entry["dir"] == "recv" else None
            if key is not None:
                expected[(key.split(":")[0], key.encode(), entry["raw"].encode())] += 1
    assert sum(n for (venue, _, _), n in expected.items() if venue == "binance") == 9757 + 6106

    settings = services.with_(kafka_topic=f"replay-{uuid.uuid4().hex[:8]}")
    ensure_topic(settings, partitions=4)
    for name, value in settings.to_env().items():
        monkeypatch.setenv(name, value)
    started_us = time.time_ns() // 1000
    assert main(["replay", *map(str, captures), "--speed", "max"]) == 0
    ended_us = time.time_ns() // 1000
    assert f"replayed {sum(expected.values()):,} trade frames" in capsys.readouterr().out

    records = read_topic(settings, sum(expected.values()))
    got = Counter((r.header("exchange").decode(), r.key, r.value) for r in records)
    assert got == expected
    assert all([name for name, _ in r.headers] == ["exchange", "received_at_us", "replay"] for r in records)
    assert all(started_us <= int(r.header("received_at_us")) <= ended_us for r in records)
