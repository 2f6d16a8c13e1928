"""Streams that try to lose or double trades, on the real local stack.

One topic carries, in the order of their ingest times: Binance BTC-USDT and ETH-USDT trades received as they happen,
with one BTC trade stamped an hour ahead; OKX BTC-USDT two minutes behind its receive time (a lagging venue); one ETH
trade sent again three minutes later; and halfway through, a replay of a 2024 Binance recording. Bronze reads a few
hundred records a batch, so the layers see the stream over many batches, as they would live.

The run must end with every bronze trade in silver or counted in a quarantine row, each trade once, and every gold
table holding exactly the reference's bars of every valid trade. The second half is sent once gold holds exactly the
first half's bars: what the lagging venue sends then falls in bars already written, which it restates in new versions
of the table.
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
from core.layers import BRONZE_TABLE, QUARANTINE_TABLE, SILVER_TABLE, gold_table
from core.settings import Settings
from cryptolake import lake
from cryptolake.runner import Pipeline
from cryptolake.venue import synthetic
from tests import reference
from tests.e2e.helpers import bar_key, cli, mismatch, private_stack, wait_for_gold
from tests.fixtures import recording

pytestmark = [pytest.mark.services, pytest.mark.e2e]

WATERMARK_S = 5
PER_STREAM = 900
RATE = 3.0  # trades per second of event time: five minutes a stream
SKEWED = PER_STREAM * 3 // 10
MIDDLE_US = 150_000_000
RECEIVE_US = 40_000  # how long a frame takes from the venue's engine to the ingestor
HOUR_US = 3_600_000_000
RECORDED = "binance/spot_btcusdt_trade_combined_20240808.replay.jsonl"


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
    return [Record("binance", t.symbol, t.frame(), t.time_ms * 1000 + RECEIVE_US) for t in trades]


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


def _sent(records: list[Record]) -> list[reference.Trade]:
    """The trades of every record, each as the reference reads it (its place in the one partition: its offset)."""
    return [t for position, r in enumerate(records)
            for t in reference.trades_of(r.exchange, r.frame, r.symbol, position) or []]  # fmt: skip


def _skewed_key(start_ms: int) -> tuple[str, str, str]:
    """The skewed trade's: the BTC-USDT stream's ids start from its start time."""
    return "binance", "BTC-USDT", str(synthetic.first_trade_id(start_ms) + SKEWED)


def _valid(sent: list[reference.Trade], start_ms: int) -> list[reference.Trade]:
    """What silver keeps: each trade once, but the skewed one."""
    return reference.unique(t for t in sent if _key(t) != _skewed_key(start_ms))


@dataclass
class Run:
    pipeline: Pipeline
    records: list[Record]
    start_ms: int  # the streams' first event time
    first_half_version: int  # the 1m table's version once it held exactly their bars

    @property
    def settings(self) -> Settings:
        return self.pipeline.settings


@pytest.fixture(scope="module")
def run(services: Settings) -> Iterator[Run]:
    # One partition: the layers see the records in the order of their ingest times (partitions read out of step are
    # another matter, see docs/lake.md).
    settings = private_stack(
        services, "adversarial", 1, gold_watermark=f"{WATERMARK_S} seconds", max_offsets_per_trigger=300
    )
    # Ten minutes ago: every ingest time, the repeat's included, is in the past.
    start_ms = int(time.time() * 1000) // 60_000 * 60_000 - 600_000
    records = _stream(start_ms)
    split = next(i for i, r in enumerate(records) if r.ingest_us >= start_ms * 1000 + MIDDLE_US)
    first_half = _valid(_sent(records[:split]), start_ms)
    running = Pipeline(settings, source=None)
    _produce(settings, records[:split])
    running.start()
    try:
        wait_for_gold(running, first_half, WATERMARK_S, "every gold table equal to the reference of the first half")
        # Nothing more is sent yet: the newest version is (or, compacted, holds) what was compared.
        version = lake.history(settings, gold_table("1m"), 1)[0].version
        then = lake.read_bars(settings, as_of=version).to_pylist()
        assert mismatch(then, first_half, WATERMARK_S) is None
        _produce(settings, records[split:])
        yield Run(running, records, start_ms, version)
    finally:
        running.stop()


def _trade_key(row: dict[str, Any]) -> tuple[str, str, str]:
    return row["exchange"], row["symbol"], row["trade_id"]


def _key(trade: reference.Trade) -> tuple[str, str, str]:
    return trade.exchange, trade.symbol, trade.trade_id


def test_every_trade_is_in_silver_or_quarantine_once_and_every_bar_is_exact(run: Run) -> None:
    settings = run.settings
    sent = _sent(run.records)
    valid = _valid(sent, run.start_ms)
    assert len(valid) == len(sent) - 2  # all but the skewed trade and the repeat
    # The lagging venue's trades, the repeat and the 2024 replay all count: every bar is the reference's of them all.
    wait_for_gold(run.pipeline, valid, WATERMARK_S, "every gold table equal to the reference of every valid trade")

    # Bronze holds every record; silver each valid trade once; the quarantine a row for the skewed one's frame (its
    # place in the one partition: its offset), with its reason and the one trade it rejected.
    assert lake.read_table(settings, BRONZE_TABLE).num_rows == len(run.records)
    silver = lake.read_table(settings, SILVER_TABLE).to_pylist()
    assert sorted(map(_trade_key, silver)) == sorted(map(_key, valid))
    quarantine = lake.read_table(settings, QUARANTINE_TABLE).to_pylist()
    skewed_key = _skewed_key(run.start_ms)
    skewed = [p for p, r in enumerate(run.records) if skewed_key in map(_key, _sent(run.records[p : p + 1]))]
    assert [(q["offset"], q["rejected_trades"], q["reject_reason"]) for q in quarantine] == [
        (*skewed, 1, "event time more than 10 s after ingest time")
    ]
    # Every trade sent is in silver once or counted in one quarantine row, but the repeat: a copy, dropped.
    assert len(silver) + sum(q["rejected_trades"] for q in quarantine) == len(reference.unique(sent))


def test_the_lagging_venue_restates_its_bars_in_new_versions(run: Run) -> None:
    settings, table = run.settings, gold_table("1m")
    wait_for_gold(
        run.pipeline, _valid(_sent(run.records), run.start_ms), WATERMARK_S, "every gold table equal to the reference"
    )
    okx = {"symbol": "BTC-USDT", "exchange": "okx"}
    then = lake.read_bars(settings, **okx, as_of=run.first_half_version).to_pylist()
    now = {bar_key(b): b for b in lake.read_bars(settings, **okx).to_pylist()}
    # OKX sends two minutes behind: when the first half was in (that version held exactly its bars), OKX had sent its
    # first minute's first 30 s only; the rest of that minute came with the second half and restated the bar.
    restated = [bar_key(b) for b in then if b["trades"] < now[bar_key(b)]["trades"]]
    assert restated, then
    versions = lake.history(settings, table, lake.history(settings, table, 1)[0].version - run.first_half_version)
    assert any(v.operation == "MERGE" and int(v.metrics.get("numTargetRowsUpdated", 0)) > 0 for v in versions), [
        (v.version, v.operation, v.summary()) for v in versions
    ]

    # The commands show the same: the versions since, and the bars as they were then.
    listed = [json.loads(line) for line in cli(settings, "history", table, "--limit", str(len(versions)), "--json")
              .splitlines()]  # fmt: skip
    assert [(v["version"], v["operation"]) for v in listed] == [(v.version, v.operation) for v in versions]
    printed = cli(settings, "bars", "BTC-USDT", "--exchange", "okx", "--as-of", str(run.first_half_version), "--json")
    assert [(b["bar_start"], b["trades"]) for b in map(json.loads, printed.splitlines())] == [
        (f"{b['bar_start']:%Y-%m-%dT%H:%M:%SZ}", b["trades"]) for b in then
    ]
