"""Recorded real sessions (Binance BTC and ETH, Coinbase, Bybit, OKX) through bronze, silver and gold.

The frames go into Kafka as the ingestor sends them (raw bytes, key, headers with the recorded receive time); once they
are all in, every gold table (every interval, and across venues) must hold exactly the bars a plain-Python computation
makes of the same frames.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Producer

from core.layers import LAYERS, QUARANTINE_TABLE, SILVER_TABLE, gold_table
from core.settings import Settings
from cryptolake import lake
from cryptolake.runner import Pipeline, Source
from tests import reference
from tests.e2e.helpers import cli, private_stack, wait_for, wait_for_gold
from tests.fixtures import recording

pytestmark = [pytest.mark.services, pytest.mark.e2e]

RECORDINGS = [
    ("binance", "binance/spot_btcusdt_trade_combined_20240808.replay.jsonl"),
    ("binance", "binance/spot_ethusdt_trade_combined_20240808.replay.jsonl"),
    ("coinbase", "coinbase/advanced_trade_market_trades.replay.jsonl"),
    ("bybit", "bybit/v5_spot_publicTrade_session.replay.jsonl"),
    ("okx", "okx/v5_trades_session_20220513.replay.jsonl"),
]
# Binance and Bybit frames name the symbol unsplit; the ingestor keys them by the canonical one it subscribed to.
CANONICAL = {"btcusdt": "BTC-USDT", "ethusdt": "ETH-USDT", "BTCUSDT": "BTC-USDT", "ETHUSDT": "ETH-USDT"}
WATERMARK_S = 5


def _key_symbol(message: dict[str, Any]) -> str:
    if "stream" in message:
        return CANONICAL[message["stream"].removesuffix("@trade")]
    if "topic" in message:
        return CANONICAL[message["topic"].removeprefix("publicTrade.")]
    if "arg" in message:
        return str(message["arg"]["instId"])
    return str(message["events"][0]["trades"][0]["product_id"])


def recorded_trade_frames(exchange: str, relative: str) -> Iterator[tuple[dict[str, Any], str, list[reference.Trade]]]:
    """Each trade frame of a recording (what the ingestor sends to Kafka): its entry, key symbol and trades."""
    for line in recording(relative).read_text().splitlines():
        entry = json.loads(line)
        if entry["dir"] != "recv" or reference.trades_of(exchange, entry["raw"], "") is None:
            continue  # what the venue sends besides trades (acks, heartbeats) never reaches Kafka
        symbol = _key_symbol(json.loads(entry["raw"]))
        yield entry, symbol, reference.trades_of(exchange, entry["raw"], symbol) or []


@dataclasses.dataclass
class Replayed:
    pipeline: Pipeline
    trades: list[reference.Trade]

    @property
    def settings(self) -> Settings:
        return self.pipeline.settings


@pytest.fixture(scope="module")
def replayed(services: Settings) -> Iterator[Replayed]:
    settings = private_stack(services, "real", 2, gold_watermark=f"{WATERMARK_S} seconds")
    producer = Producer({"bootstrap.servers": settings.kafka_bootstrap, "enable.idempotence": True, "acks": "all"})
    trades = []
    for exchange, relative in RECORDINGS:
        for entry, symbol, found in recorded_trade_frames(exchange, relative):
            trades += found
            headers = [("exchange", exchange.encode()), ("received_at_us", str(int(entry["t"] * 1e6)).encode())]
            producer.produce(
                settings.kafka_topic, entry["raw"].encode(), f"{exchange}:{symbol}".encode(), headers=headers
            )
    assert producer.flush(30) == 0
    running = Pipeline(settings, source=None)
    running.start()
    try:
        yield Replayed(running, reference.unique(trades))
    finally:
        running.stop()


def test_every_gold_table_equals_the_reference(replayed: Replayed) -> None:
    """Every interval's bars per exchange, and the 1m bars across venues."""
    assert {t.exchange for t in replayed.trades} == {"binance", "coinbase", "bybit", "okx"}
    wait_for_gold(replayed.pipeline, replayed.trades, WATERMARK_S, "every gold table equal to the reference")


def test_silver_holds_each_trade_once_and_quarantine_nothing(replayed: Replayed) -> None:
    silver = lake.read_table(replayed.settings, SILVER_TABLE)
    assert silver.num_rows == len(replayed.trades)
    assert lake.read_table(replayed.settings, QUARANTINE_TABLE).num_rows == 0


def test_bars_command_prints_json_with_exact_decimals(replayed: Replayed) -> None:
    lines = cli(replayed.settings, "bars", "ETH-USDT", "--exchange", "binance", "--json").splitlines()
    gold = lake.read_bars(replayed.settings, "ETH-USDT", exchange="binance").to_pylist()
    assert len(lines) == len(gold) > 0
    for line, bar in zip(lines, gold, strict=True):
        printed = json.loads(line)
        assert printed["bar_start"] == bar["bar_start"].strftime("%Y-%m-%dT%H:%M:%SZ")
        assert [Decimal(printed[k]) for k in ("open", "close", "volume", "quote_volume")] == [
            bar[k] for k in ("open", "close", "volume", "quote_volume")
        ]
        assert isinstance(printed["volume"], str) and printed["trades"] == bar["trades"]
        assert printed["complete"] is bar["complete"]


def test_reset_deletes_the_layer_and_names_what_to_reset_next(replayed: Replayed) -> None:
    gold_rows = lambda: lake.read_table(replayed.settings, gold_table("1m")).num_rows  # noqa: E731
    wait_for(replayed.pipeline, lambda: gold_rows() > 0, "gold bars")
    refused = subprocess.run(
        [sys.executable, "-m", "cryptolake.cli", "reset", "silver"],
        env={**os.environ, **replayed.settings.to_env()},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert refused.returncode == 1 and "silver is running" in refused.stderr
    assert lake.read_table(replayed.settings, SILVER_TABLE).num_rows > 0

    replayed.pipeline.stop()
    output = cli(replayed.settings, "reset", "silver")
    assert "cryptolake reset gold" in output
    assert lake.read_table(replayed.settings, SILVER_TABLE).num_rows == 0
    s3 = lake.filesystem(replayed.settings)
    for query in LAYERS["silver"].queries:
        prefix = f"{replayed.settings.lake_bucket}/{replayed.settings.checkpoint_key(query)}"
        assert s3.get_file_info(prefix).type.name == "NotFound"
    assert gold_rows() > 0  # downstream is the user's to reset


def test_up_replays_recordings_of_any_venue_through_the_ingestor(services: Settings, tmp_path: Path) -> None:
    """`cryptolake up --source replay`: the local venue serves the recordings, the real ingestor reads them."""
    # Its own processes' pid files, beside the module's running pipeline.
    settings = private_stack(services, "replay", 2, local_home=str(tmp_path))
    chosen = [RECORDINGS[3], RECORDINGS[4]]  # Bybit and OKX: frames with several trades, ids as text
    expected = reference.unique(t for exchange, rel in chosen for *_, found in recorded_trade_frames(exchange, rel)
                                for t in found)  # fmt: skip
    source = Source(kind="replay", recordings=tuple(recording(rel) for _, rel in chosen), speed="max")
    running = Pipeline(settings, source)
    running.start()
    try:
        wait_for(running, lambda: lake.read_table(settings, SILVER_TABLE).num_rows >= len(expected), "silver")
        silver = lake.read_table(settings, SILVER_TABLE).to_pylist()
        assert sorted((r["exchange"], r["symbol"], r["trade_id"]) for r in silver) == sorted(
            (t.exchange, t.symbol, t.trade_id) for t in expected
        )
        assert lake.read_table(settings, QUARANTINE_TABLE).num_rows == 0
    finally:
        running.stop()
