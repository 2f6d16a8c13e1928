"""Streams that try to lose or double trades, on the real local stack.

One topic carries, in the order of their ingest times: Binance BTC-USDT and ETH-USDT trades received as they happen,
with one BTC trade stamped an hour ahead; OKX BTC-USDT two minutes behind its receive time (a lagging venue); one ETH
trade sent again three minutes later; and halfway through, a replay of a 2024 Binance recording. Bronze reads a few
hundred records a batch, so the layers see the stream over many batches, as they would live.

The run must end with every bronze trade in silver or in the quarantine, each trade once, and in every gold table
each bar equal to the reference computed from the trades that count: all but those `lake.read_late_trades` lists.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from confluent_kafka import Producer

from bench import frames, workload
from core.layers import BRONZE_TABLE, GOLD_OUTPUTS, QUARANTINE_TABLE, ROLLUP_INTERVALS, SILVER_TABLE, gold_query
from core.settings import Settings
from cryptolake import lake
from cryptolake.runner import Pipeline
from cryptolake.venue import synthetic
from tests import reference
from tests.e2e.helpers import bar_key, cli, private_stack, us, wait_for
from tests.fixtures import recording

pytestmark = [pytest.mark.services, pytest.mark.e2e]

WATERMARK_S = 5
MINUTES = {"1m": 1, "5m": 5, "1h": 60}
PER_STREAM = 900
RATE = 3.0  # trades per second of event time: five minutes a stream
SKEWED = PER_STREAM * 3 // 10
MIDDLE_US = 150_000_000
RECEIVE_US = 40_000  # how long a frame takes from the venue's engine to the ingestor
HOUR_US = 3_600_000_000
RECORDED = "binance/spot_btcusdt_trade_combined_20240808.replay.jsonl"
EXACT = ("open", "high", "low", "close", "volume", "quote_volume", "trades", "buy_volume", "sell_volume")


@dataclass(frozen=True)
class Record:
    exchange: str
    symbol: str
    frame: str
    ingest_us: int
    replay: bool = False


def _okx_frame(trade: synthetic.Trade) -> str:
    sold = workload.Trade(trade.trade_id, float(trade.price), float(trade.size), not trade.buyer_is_maker)
    return frames.render(workload.Burst("okx", trade.symbol, 2, 0.0, (sold,)), trade.time_ms * 1000)[0]


def _binance(trades: list[synthetic.Trade]) -> list[Record]:
    return [Record("binance", t.symbol, t.binance_frame(), t.time_ms * 1000 + RECEIVE_US) for t in trades]


def _stream(start_ms: int) -> list[Record]:
    """Every record of the stream, in the order of their ingest times."""
    btc = _binance(list(synthetic.generate(["BTC-USDT"], seed=11, start_ms=start_ms, rate=RATE, count=PER_STREAM)))
    eth = list(synthetic.generate(["ETH-USDT"], seed=12, start_ms=start_ms, rate=RATE, count=PER_STREAM))
    okx = synthetic.generate(["BTC-USDT"], seed=13, start_ms=start_ms, rate=RATE, count=PER_STREAM)
    # One trade stamped an hour ahead of when it was received.
    skewed = json.loads(btc[SKEWED].frame)
    skewed["data"]["T"] += HOUR_US // 1000
    btc[SKEWED] = dataclasses.replace(btc[SKEWED], frame=json.dumps(skewed, separators=(",", ":")))
    # One trade sent again three minutes after the first time.
    again = dataclasses.replace(_binance([eth[100]])[0], ingest_us=eth[100].time_ms * 1000 + 180_000_000)
    lagging = [Record("okx", t.symbol, _okx_frame(t), t.time_ms * 1000 + 120_000_000) for t in okx]
    # A 2024 recording, replayed from the middle of the stream on at its own pace.
    lines = [json.loads(line) for line in recording(RECORDED).read_text().splitlines()]
    recorded = [entry for entry in lines if entry["dir"] == "recv" and '"stream"' in entry["raw"]][:300]
    shift_us = start_ms * 1000 + MIDDLE_US - int(recorded[0]["t"] * 1e6)
    replayed = [Record("binance", "BTC-USDT", e["raw"], int(e["t"] * 1e6) + shift_us, replay=True) for e in recorded]
    return sorted([*btc, *_binance(eth), again, *lagging, *replayed], key=lambda r: r.ingest_us)


def _produce(settings: Settings, records: list[Record]) -> None:
    producer = Producer({"bootstrap.servers": settings.kafka_bootstrap, "enable.idempotence": True, "acks": "all"})
    for r in records:
        headers = [("exchange", r.exchange.encode()), ("received_at_us", str(r.ingest_us).encode())]
        if r.replay:
            headers.append(("replay", b"1"))
        key = f"{r.exchange}:{r.symbol}".encode()
        producer.produce(settings.kafka_topic, r.frame.encode(), key, headers=headers, timestamp=r.ingest_us // 1000)
    assert producer.flush(30) == 0


@dataclass
class Run:
    pipeline: Pipeline
    records: list[Record]

    @property
    def settings(self) -> Settings:
        return self.pipeline.settings


def _gold_watermark_ms(settings: Settings, interval: str = "1m", across: bool = False) -> int:
    return lake.committed_watermark(settings, gold_query(interval, across)) or 0


@pytest.fixture(scope="module")
def run(services: Settings) -> Iterator[Run]:
    # One partition: the layers see the records in the order of their ingest times (partitions read out of step are
    # another matter, see the README's "Late trades").
    settings = private_stack(
        services, "adversarial", 1, gold_watermark=f"{WATERMARK_S} seconds", max_offsets_per_trigger=300
    )
    # Ten minutes ago: every ingest time, the repeat's included, is in the past.
    start_ms = int(time.time() * 1000) // 60_000 * 60_000 - 600_000
    records = _stream(start_ms)
    split = next(i for i, r in enumerate(records) if r.ingest_us >= start_ms * 1000 + MIDDLE_US)
    running = Pipeline(settings, source=None)
    _produce(settings, records[:split])
    running.start()
    try:
        # The second half comes once gold has passed its first minutes: what lags behind them is late for sure.
        passed_ms = start_ms + (MIDDLE_US - 50_000_000) // 1000
        wait_for(running, lambda: _gold_watermark_ms(settings) >= passed_ms, "gold past the first half's minutes")
        _produce(settings, records[split:])
        yield Run(running, records)
    finally:
        running.stop()


def _trade_key(row: dict[str, Any]) -> tuple[str, str, str]:
    return row["exchange"], row["symbol"], row["trade_id"]


def _key(trade: reference.Trade) -> tuple[str, str, str]:
    return trade.exchange, trade.symbol, trade.trade_id


def _settled(settings: Settings, latest_us: int) -> bool:
    """Every gold query from silver has committed a batch at the watermark of the whole stream (its latest trade less
    the delay), and every rollup one at the start of the latest 1m bar."""
    final_ms = (latest_us - WATERMARK_S * 1_000_000) // 1000
    from_silver = [(i, a) for i, a in GOLD_OUTPUTS if a or i not in ROLLUP_INTERVALS]
    if not all(_gold_watermark_ms(settings, interval, across) >= final_ms for interval, across in from_silver):
        return False
    starts = lake.read_bars(settings, interval="1m")["bar_start"].to_pylist()
    latest_1m_ms = us(max(starts)) // 1000 if starts else final_ms
    return all(_gold_watermark_ms(settings, interval) >= latest_1m_ms for interval in ROLLUP_INTERVALS)


def _assert_bars_are_the_counted_trades(settings: Settings, valid: list[reference.Trade]) -> dict[Any, set[Any]]:
    """In every gold table, the bars gold's watermark has passed are the reference's over the trades that count."""
    late_by_table = {}
    for interval, across in GOLD_OUTPUTS:
        late = {_trade_key(t) for t in lake.read_late_trades(settings, interval, across_venues=across).to_pylist()}
        counted = [dataclasses.replace(t, exchange="*") if across else t for t in valid if _key(t) not in late]
        expected = reference.bars(counted, MINUTES[interval])
        width_us = MINUTES[interval] * 60_000_000
        sealed = {k for k in expected if k[2] + width_us <= _gold_watermark_ms(settings, interval, across) * 1000}
        gold = lake.read_bars(settings, interval=interval, across_venues=across).to_pylist()
        got = {("*", b["symbol"], us(b["bar_start"])) if across else bar_key(b): b for b in gold}
        assert set(got) == sealed and len(got) == len(gold), (interval, across)
        for key in sealed:
            want = dataclasses.asdict(expected[key])
            assert {f: got[key][f] for f in EXACT} == {f: want[f] for f in EXACT}, (interval, across, key)
        late_by_table[(interval, across)] = late
    return late_by_table


def test_every_trade_is_in_silver_or_quarantine_once_and_every_bar_is_exact(run: Run) -> None:
    settings = run.settings
    sent = [(r, t) for position, r in enumerate(run.records)
            for t in reference.trades_of(r.exchange, r.frame, r.symbol, position) or []]  # fmt: skip
    skewed = ("binance", "BTC-USDT", str(synthetic.FIRST_TRADE_ID + SKEWED))
    valid = reference.unique(t for _, t in sent if _key(t) != skewed)
    assert len(valid) == len(sent) - 2  # all but the skewed trade and the repeat
    wait_for(run.pipeline, lambda: _settled(settings, max(t.time_us for t in valid)), "gold settled on the stream")

    # Bronze holds every record; silver each valid trade once; the quarantine the skewed one, with its reason.
    assert lake.read_table(settings, BRONZE_TABLE).num_rows == len(run.records)
    silver = lake.read_table(settings, SILVER_TABLE).to_pylist()
    assert sorted(map(_trade_key, silver)) == sorted(map(_key, valid))
    quarantine = lake.read_table(settings, QUARANTINE_TABLE).to_pylist()
    assert [q["reject_reason"] for q in quarantine] == ["event time more than 10 s after ingest time"]

    late = _assert_bars_are_the_counted_trades(settings, valid)[("1m", False)]
    # The lagging venue's trades that came after gold had passed their minute are late, and listed as such.
    assert any(exchange == "okx" for exchange, *_ in late)
    # Neither the lagging venue nor the skewed clock cost Binance's live trades a bar; every replayed 2024 trade came
    # long after gold had passed its minute.
    replayed = {_key(t) for r, t in sent if r.replay}
    assert {k for k in late if k[0] == "binance"} == replayed
    # The command lists the same trades.
    listed = [
        json.loads(line) for line in cli(settings, "late", "BTC-USDT", "--exchange", "okx", "--json").splitlines()
    ]
    assert sorted(map(_trade_key, listed)) == sorted(k for k in late if k[0] == "okx")
