"""`cryptolake backfill`'s engine against a loopback archive made from a recorded session: days in ms and in us,
checksums, bad rows, days not published, and, on a real Kafka, resume after an interruption and a second run that
sends nothing."""

from __future__ import annotations

import argparse
import threading
import uuid
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic

from core import exits
from core.kafka import librdkafka_config
from core.settings import Settings
from ingestion import backfill
from ingestion.backfill import (
    CHUNK_TRADES,
    Archive,
    Backfill,
    BackfillError,
    DayProgress,
    KafkaSink,
    Progress,
    ProgressTopic,
    Sink,
    Summary,
    add_arguments,
    parse_row,
)
from ingestion.metrics import Metrics
from ingestion.producer import FrameProducer
from tests import reference
from tests.e2e.helpers import private_stack
from tests.ingestion.archive import SYMBOL, LoopbackArchive, recorded_trades, shifted
from tests.ingestion.kafka_topic import read_topic

# The recording's trades on the archive's last day in ms and its first in us: 2024-12-31 and 2025-01-01.
SHIFTS = (145, 146)
MS_DAY, US_DAY = date(2024, 12, 31), date(2025, 1, 1)


class ListSink:
    def __init__(self) -> None:
        self.sent: list[tuple[bytes, bytes, bytes]] = []

    def send(self, exchange: bytes, key: bytes, frame: bytes, received_at_us: int) -> None:
        self.sent.append((exchange, key, frame))

    def settle(self, timeout: float) -> int:
        return 0


class MemoryProgress:
    def __init__(self) -> None:
        self.days: dict[date, DayProgress] = {}

    def read(self) -> dict[date, DayProgress]:
        return dict(self.days)

    def record(self, day: date, progress: DayProgress) -> None:
        self.days[day] = progress


def sent_trades(frames: list[bytes]) -> list[reference.Trade]:
    """What the reference reads in the frames, as silver would get them."""
    return [t for f in frames for t in reference.trades_of("binance", f.decode(), SYMBOL) or []]


def run(
    base_url: str,
    sink: Sink,
    progress: Progress,
    first: date,
    last: date,
    stop: threading.Event | None = None,
    chunk_trades: int = CHUNK_TRADES,
) -> tuple[Summary, list[str]]:
    """A backfill's summary and what it said."""
    said: list[str] = []
    engine = Backfill(Archive(base_url), sink, progress, SYMBOL, first, last, 1_000_000, stop or threading.Event(),
                      said.append, chunk_trades=chunk_trades)  # fmt: skip
    return engine.run(), said


@pytest.fixture
def archive(tmp_path: Path) -> LoopbackArchive:
    return LoopbackArchive(tmp_path / "archive")


@pytest.fixture
def trades() -> list[reference.Trade]:
    return [t for days in SHIFTS for t in shifted(recorded_trades(300), days)]


def test_rows_in_ms_before_2025_and_in_us_from_then_on() -> None:
    ms = parse_row("3735683259,61837.63000000,0.02000000,1236.75,1735603200342,True,True", MS_DAY)
    assert (ms.trade_id, ms.time_us, ms.buyer_is_maker) == (3735683259, 1735603200342000, True)
    us = parse_row("4200000001,96000.01,0.5,48000.005,1735689600123456,False,True\r\n", US_DAY)
    assert (us.time_us, us.price, us.quantity, us.buyer_is_maker) == (1735689600123456, "96000.01", "0.5", False)
    with pytest.raises(ValueError, match="not on 2025-01-01"):
        parse_row("4200000001,96000.01,0.5,48000.005,1735689600123,False,True", US_DAY)  # ms on a us day


def test_every_archived_trade_is_sent_once_as_a_binance_frame(
    archive: LoopbackArchive, trades: list[reference.Trade]
) -> None:
    assert archive.write(trades) == [MS_DAY, US_DAY]
    sink, progress = ListSink(), MemoryProgress()
    with archive.serving() as url:
        _, said = run(url, sink, progress, MS_DAY, US_DAY)
    assert {(exchange, key) for exchange, key, _ in sink.sent} == {(b"binance", b"binance:BTC-USDT")}
    assert sent_trades([f for *_, f in sink.sent]) == trades
    assert progress.days[MS_DAY] == DayProgress(int(trades[299].trade_id), 300, done=True)
    assert progress.days[US_DAY].done and len(progress.days) == 2
    assert "days 2/2 | 600 trades" in said[-1]  # the last progress line


def test_a_checksum_mismatch_stops_the_day_before_any_of_it_is_sent(
    archive: LoopbackArchive, trades: list[reference.Trade]
) -> None:
    archive.write(trades)
    checksum = Path(f"{archive.zip_path(US_DAY)}.CHECKSUM")
    checksum.write_text("0" * 64 + checksum.read_text()[64:])
    sink, progress = ListSink(), MemoryProgress()
    with archive.serving() as url, pytest.raises(BackfillError, match=r"checksum mismatch .*2025-01-01\.zip"):
        run(url, sink, progress, MS_DAY, US_DAY)
    assert len(sink.sent) == 300 and US_DAY not in progress.days


def test_malformed_rows_and_missing_days_are_counted_and_named(
    archive: LoopbackArchive, trades: list[reference.Trade]
) -> None:
    lines = [f"{t.trade_id},{t.price},{t.size},1,{t.time_us // 1000},True,True\n" for t in trades[:3]]
    bad = f"{trades[1].trade_id},not a price,1,1,{trades[1].time_us // 1000},True,True\n"
    archive.write_day(MS_DAY, [lines[0], bad, lines[2]])
    sink, progress = ListSink(), MemoryProgress()
    with archive.serving() as url:
        summary, said = run(url, sink, progress, MS_DAY, US_DAY)
    assert [t.trade_id for t in sent_trades([f for *_, f in sink.sent])] == [trades[0].trade_id, trades[2].trade_id]
    assert summary.malformed == 1 and summary.missing == [US_DAY]
    assert any("line 2 skipped, malformed: 'not a price' is no number" in line for line in said)
    assert any("2025-01-01 is not in the archive" in line for line in said)
    assert US_DAY not in progress.days  # a later run looks for it again


def test_rows_out_of_id_order_are_all_sent(archive: LoopbackArchive, trades: list[reference.Trade]) -> None:
    # Only a resumed day skips ids: those up to the last one an earlier run recorded.
    shuffled = [trades[2], trades[0], trades[1]]
    archive.write_day(MS_DAY, [f"{t.trade_id},{t.price},{t.size},1,{t.time_us // 1000},True,True\n" for t in shuffled])
    sink = ListSink()
    with archive.serving() as url:
        run(url, sink, MemoryProgress(), MS_DAY, MS_DAY)
    assert [t.trade_id for t in sent_trades([f for *_, f in sink.sent])] == [t.trade_id for t in shuffled]


@pytest.mark.parametrize(
    ("argv", "said"),
    [
        (["kraken", "BTC-USD", "--from", "2024-08-08", "--to", "2024-08-08"], "backfill reads binance only"),
        (["binance", "BTC-USDT", "--from", "2024-08-09", "--to", "2024-08-08"], "--from 2024-08-09 is after --to"),
        (["binance", "btcusdt", "--from", "2024-08-08", "--to", "2024-08-08"], "'btcusdt' is no canonical symbol"),
    ],
)
def test_a_request_it_cannot_serve_is_refused_before_anything_is_sent(argv: list[str], said: str) -> None:
    parser, lines = argparse.ArgumentParser(), []
    add_arguments(parser)
    assert backfill.run(Settings(), parser.parse_args(argv), threading.Event(), lines.append) == exits.MISCONFIGURED
    assert len(lines) == 1 and lines[0].startswith(said)


class StopAfter:
    """A Kafka producer that asks the backfill to stop once it has sent ``count`` frames."""

    def __init__(self, producer: FrameProducer, count: int, stop: threading.Event) -> None:
        self.producer, self.count, self.stop = producer, count, stop

    def send(self, exchange: bytes, key: bytes, frame: bytes, received_at_us: int) -> None:
        self.producer.send(exchange, key, frame, received_at_us)
        self.count -= 1
        if self.count == 0:
            self.stop.set()

    def settle(self, timeout: float) -> int:
        return self.producer.settle(timeout)


@pytest.fixture
def stack(services: Settings) -> Iterator[Settings]:
    yield private_stack(services, "backfill", 1)


@pytest.mark.services
def test_an_interrupted_backfill_resumes_and_a_second_run_sends_nothing(
    stack: Settings, archive: LoopbackArchive, trades: list[reference.Trade]
) -> None:
    archive.write(trades)
    producer = FrameProducer(
        librdkafka_config(stack), stack.kafka_topic, Metrics(), queue_frames=1000, queue_mib=8, backfill=True
    )
    with archive.serving() as url:
        stop = threading.Event()
        with pytest.raises(BackfillError, match="interrupted in 2024-12-31 after trade"):
            run(url, StopAfter(producer, 250, stop), ProgressTopic(stack, "binance", SYMBOL), MS_DAY, US_DAY,
                stop=stop, chunk_trades=100)  # fmt: skip
        # A new process: its progress read back from Kafka.
        resumed, _ = run(url, producer, ProgressTopic(stack, "binance", SYMBOL), MS_DAY, US_DAY)
        again, _ = run(url, producer, ProgressTopic(stack, "binance", SYMBOL), MS_DAY, US_DAY)
    assert (resumed.trades, resumed.done) == (350, 2)
    assert (again.trades, again.done, again.done_before) == (0, 0, 2)
    assert producer.flush(30) == 0
    records = read_topic(stack, len(trades))
    assert sent_trades([r.value for r in records]) == trades
    assert {(r.key, r.header("exchange"), r.header("backfill")) for r in records} == {
        (b"binance:BTC-USDT", b"binance", b"1")
    }


@pytest.mark.services
def test_frames_kafka_refuses_stop_the_run_before_their_progress_is_recorded(
    services: Settings, archive: LoopbackArchive, trades: list[reference.Trade]
) -> None:
    settings = services.with_(kafka_topic=f"refusing-{uuid.uuid4().hex[:8]}")
    # A topic whose record batches may not exceed 100 bytes: every frame is refused (message too large).
    admin = AdminClient(librdkafka_config(settings))  # held: a collected client cancels
    created = admin.create_topics([NewTopic(settings.kafka_topic, 1, 1, config={"max.message.bytes": "100"})])
    created[settings.kafka_topic].result(30)
    archive.write(trades)
    sink = KafkaSink(settings)
    with archive.serving() as url, pytest.raises(BackfillError, match="Kafka refused frames of 2024-12-31"):
        run(url, sink, ProgressTopic(settings, "binance", SYMBOL), MS_DAY, US_DAY, chunk_trades=100)
    assert ProgressTopic(settings, "binance", SYMBOL).read() == {}
