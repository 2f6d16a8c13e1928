"""``python -m ingestion.backfill VENUE SYMBOL --from DATE --to DATE``: a venue's archived trades into Kafka.

Reads Binance's public daily trade files (``<base>/data/spot/daily/trades/<SYMBOL>/<SYMBOL>-trades-<day>.zip``, a zip
of one header-less CSV: trade id, price, quantity, quote quantity, time, buyer is maker, best match; the time in ms
before 2025-01-01 and in us from then on), checks each against its ``.CHECKSUM`` and sends every trade as the frame
Binance's WebSocket would have sent, with the ingestor's key and headers and the ``backfill`` mark, at most
``backfill_trades_per_second`` a second.

Resume and idempotence: silver drops a copy of a trade only within its watermark, so the backfill keeps its own
progress, per venue, symbol and day (the last trade id Kafka has taken, and whether the day is done), in a compacted
topic beside the trades' one. It records a chunk's progress only after Kafka has acknowledged the chunk's frames: an
interrupted run resumes after the last recorded trade, and a crash between the acknowledgement and the record sends
at most one chunk again, seconds later in Kafka time, which silver's dedup drops.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import logging
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import IO, Any, Protocol
from urllib.parse import urlsplit

from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic  # where mypy sees it: confluent_kafka.admin does not export it

from core import exits, logs
from core.kafka import librdkafka_config
from core.settings import Settings, SettingsError
from core.throttle import Throttle
from core.venues.base import TradeText
from core.venues.binance import Binance
from ingestion.metrics import Metrics
from ingestion.producer import FrameProducer
from ingestion.topics import create_topic

ARCHIVE_VENUES = ("binance",)
MICROSECONDS_FROM = date(2025, 1, 1)  # the archive's first day stamped in microseconds
CHUNK_TRADES = 10_000  # trades between two progress records: what a crash may send twice
PROGRESS_EVERY_S = 5.0
KAFKA_TIMEOUT_S = 120.0  # how long a chunk may wait for Kafka's acknowledgement before the run gives up
KAFKA_ANSWER_S = 30.0  # how long Kafka may take to answer at the start
DOWNLOAD_TIMEOUT_S = 60.0
MALFORMED_SHOWN = 10  # malformed rows named one by one; the rest are counted
US_PER_DAY = 86_400_000_000
LOOPBACK = ("127.0.0.1", "localhost", "::1")
KAFKA_LOG_EVERY_S = 30.0
KAFKA_LOG = logging.getLogger("librdkafka")

Say = Callable[[str], None]


class BackfillError(Exception):
    """What stops a backfill, said to the user as is; ``code``: the exit code."""

    def __init__(self, message: str, code: int = exits.FAILED) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class Row:
    trade_id: int
    price: str
    quantity: str
    time_us: int
    buyer_is_maker: bool


def _positive_decimal(text: str) -> str:
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise ValueError(f"{text!r} is no number") from None
    if not value.is_finite() or value <= 0:
        raise ValueError(f"{text!r} is not positive")
    return text


def parse_row(line: str, day: date) -> Row:
    """One CSV row of ``day``'s file; ValueError saying what is wrong with it."""
    fields = line.rstrip("\r\n").split(",")
    if len(fields) != 7:
        raise ValueError(f"{len(fields)} columns, not 7")
    trade_id, price, quantity, _quote, stamp, maker, _best = fields
    if not trade_id.isdigit() or not stamp.isdigit():
        raise ValueError("trade id or time is no whole number")
    if maker not in ("True", "False", "true", "false"):
        raise ValueError(f"buyer-is-maker {maker!r} is neither True nor False")
    time_us = int(stamp) * (1 if day >= MICROSECONDS_FROM else 1_000)
    start = int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp()) * 1_000_000
    if not start <= time_us < start + US_PER_DAY:
        unit = "us" if day >= MICROSECONDS_FROM else "ms"
        raise ValueError(f"time {stamp} ({unit}) is not on {day}")
    return Row(int(trade_id), _positive_decimal(price), _positive_decimal(quantity), time_us, maker.lower() == "true")


def frame(symbol: str, row: Row) -> bytes:
    """The trade as Binance's WebSocket sends it, which silver reads as it reads the live stream's: its time in ms,
    as the live stream's (a microsecond archive's sub-millisecond digits are dropped)."""
    trade = TradeText(row.trade_id, row.price, row.quantity, taker_buy=not row.buyer_is_maker)
    return Binance.render(symbol, [trade], row.time_us)[0].encode()


class Archive:
    """Binance's public trade archive at ``base_url``: each day's file, checked against its checksum."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url.rstrip("/")
        # The loopback archives of the tests are reached directly, whatever proxy the environment sets.
        direct = urlsplit(self.base_url).hostname in LOOPBACK
        self._opener = urllib.request.build_opener(*([urllib.request.ProxyHandler({})] if direct else []))

    def file_name(self, symbol: str, day: date) -> str:
        return f"{Binance.venue_symbol(symbol).upper()}-trades-{day.isoformat()}.zip"

    def url(self, symbol: str, day: date) -> str:
        venue_symbol = Binance.venue_symbol(symbol).upper()
        return f"{self.base_url}/data/spot/daily/trades/{venue_symbol}/{self.file_name(symbol, day)}"

    def _get(self, url: str) -> IO[bytes] | None:
        """The response to a GET of ``url``, None on a 404."""
        try:
            response: IO[bytes] = self._opener.open(url, timeout=DOWNLOAD_TIMEOUT_S)
        except urllib.error.HTTPError as exc:
            if exc.code == 404:
                return None
            raise BackfillError(f"downloading {url} failed: HTTP {exc.code} {exc.reason}") from None
        except (urllib.error.URLError, OSError) as exc:
            raise BackfillError(f"downloading {url} failed: {getattr(exc, 'reason', exc)}") from None
        return response

    def download(self, symbol: str, day: date, into: IO[bytes]) -> bool:
        """Write ``day``'s zip into ``into``, checked against its checksum; False if the archive has no such day."""
        url = self.url(symbol, day)
        listed = self._get(url + ".CHECKSUM")
        if listed is None:
            return False
        with listed:
            words = listed.read(4096).decode("utf-8", "replace").split()
        if len(words) != 2 or len(words[0]) != 64 or words[1] != self.file_name(symbol, day):
            raise BackfillError(f"{url}.CHECKSUM is not '<sha256>  {self.file_name(symbol, day)}': {words[:2]}")
        body = self._get(url)
        if body is None:
            return False
        digest = hashlib.sha256()
        try:
            with body:
                while block := body.read(1 << 20):
                    digest.update(block)
                    into.write(block)
        except OSError as exc:
            raise BackfillError(f"downloading {url} failed: {exc}") from None
        if digest.hexdigest() != words[0].lower():
            raise BackfillError(
                f"checksum mismatch for {url}: the archive lists {words[0]}, the download is {digest.hexdigest()}; "
                "nothing of this day was sent"
            )
        return True


@dataclass(frozen=True)
class DayProgress:
    last_trade_id: int | None  # the newest trade Kafka has taken; rows up to it are not sent again
    trades: int
    done: bool


class Progress(Protocol):
    def read(self) -> dict[date, DayProgress]: ...

    def record(self, day: date, progress: DayProgress) -> None: ...


class ProgressTopic:
    """Progress of one venue and symbol, by day, as records keyed ``venue:symbol:day`` in a compacted topic (the
    trades' topic's name + ``.backfill``): the latest record of each key is the day's progress, kept for good."""

    def __init__(self, settings: Settings, venue: str, symbol: str) -> None:
        self.topic = f"{settings.kafka_topic}.backfill"
        self.prefix = f"{venue}:{symbol}:"
        self._bootstrap = settings.kafka_bootstrap
        self._client: dict[str, Any] = {**librdkafka_config(settings), "logger": KAFKA_LOG}
        self._producer = Producer({**self._client, "enable.idempotence": True, "acks": "all"})

    def _ensure_topic(self) -> None:
        admin = AdminClient(self._client)
        try:
            admin.list_topics(timeout=KAFKA_ANSWER_S)
            create_topic(admin, NewTopic(self.topic, 1, -1, config={"cleanup.policy": "compact"}), KAFKA_TIMEOUT_S)
        except TimeoutError:
            raise BackfillError(f"Kafka at {self._bootstrap} did not answer within {KAFKA_TIMEOUT_S:.0f} s") from None
        except KafkaException as exc:
            error = exc.args[0]
            raise BackfillError(f"Kafka at {self._bootstrap}: {getattr(error, 'str', lambda: error)()}") from None

    def read(self) -> dict[date, DayProgress]:
        self._ensure_topic()
        consumer = Consumer({**self._client, "group.id": "cryptolake-backfill", "enable.auto.commit": False})
        found: dict[date, DayProgress] = {}
        try:
            _, end = consumer.get_watermark_offsets(TopicPartition(self.topic, 0), timeout=KAFKA_TIMEOUT_S)
            consumer.assign([TopicPartition(self.topic, 0, 0)])
            deadline = time.monotonic() + KAFKA_TIMEOUT_S
            position = 0
            while position < end:
                if time.monotonic() > deadline:
                    raise BackfillError(f"reading the progress topic {self.topic} took over {KAFKA_TIMEOUT_S:.0f} s")
                message = consumer.poll(1.0)
                if message is None or message.error() is not None:
                    continue
                position = (message.offset() or 0) + 1
                key, value = (message.key() or b"").decode(), message.value()
                if key.startswith(self.prefix) and value:
                    found[date.fromisoformat(key.removeprefix(self.prefix))] = DayProgress(**json.loads(value))
        except KafkaException as exc:
            raise BackfillError(f"reading the progress topic {self.topic} failed: {exc.args[0]}") from None
        finally:
            consumer.close()
        return found

    def record(self, day: date, progress: DayProgress) -> None:
        key = f"{self.prefix}{day.isoformat()}".encode()
        self._producer.produce(self.topic, json.dumps(asdict(progress)).encode(), key)
        if self._producer.flush(KAFKA_TIMEOUT_S):
            raise BackfillError(f"Kafka did not take the progress record of {day} within {KAFKA_TIMEOUT_S:.0f} s")


class OncePerKind(logging.Filter):
    """While Kafka is down, librdkafka says so every few milliseconds: one line of each kind every
    KAFKA_LOG_EVERY_S lets it through."""

    def __init__(self) -> None:
        super().__init__()
        self._throttle = Throttle(KAFKA_LOG_EVERY_S)

    def filter(self, record: logging.LogRecord) -> bool:
        kind = " ".join(record.getMessage().split()[:2])  # e.g. "FAIL [rdkafka#producer-1]"
        return self._throttle.allow(kind) is not None


class Pace:
    """At most ``per_second`` trades a second, on average since the start."""

    def __init__(self, per_second: int, stop: threading.Event) -> None:
        self.per_second, self._stop = per_second, stop
        self._start, self._taken = time.monotonic(), 0

    def take(self) -> None:
        self._taken += 1
        ahead = self._taken / self.per_second - (time.monotonic() - self._start)
        if ahead > 0.01:  # sleep in steps of 10 ms at least, not once a trade
            self._stop.wait(ahead)


@dataclass
class Summary:
    days: int  # in the range
    done_before: int = 0  # days a run before this one had finished
    done: int = 0  # days this run finished
    trades: int = 0  # sent by this run
    malformed: int = 0
    missing: list[date] = field(default_factory=list)  # days the archive does not have (yet)


class Reporter:
    """Progress lines on stderr: days done, trades sent, the rate and the time left, every few seconds."""

    def __init__(self, summary: Summary, label: str, say: Say) -> None:
        self.summary, self.label, self.say = summary, label, say
        self._start = self._last = time.monotonic()

    def line(self, day: date, fraction: float, *, now: bool = False) -> None:
        """Say where the run is, ``fraction`` of ``day``'s file read; at most every PROGRESS_EVERY_S unless ``now``."""
        clock = time.monotonic()
        if not now and clock - self._last < PROGRESS_EVERY_S:
            return
        self._last = clock
        s = self.summary
        elapsed = max(clock - self._start, 1e-9)
        to_do = s.days - s.done_before
        share = (s.done + fraction) / to_do if to_do else 1.0
        left = f"about {timedelta(seconds=round(elapsed * (1 - share) / share))} left" if share > 0 else "time left ?"
        self.say(
            f"{self.label}: {day} | days {s.done_before + s.done}/{s.days} | {s.trades:,} trades | "
            f"{s.trades / elapsed:,.0f} trades/s | {left}"
        )


class Sink(Protocol):
    def send(self, exchange: bytes, key: bytes, frame: bytes, received_at_us: int) -> None: ...

    def settle(self, timeout: float) -> int: ...


class KafkaSink:
    """The ingestor's producer, its frames marked backfill. Its ``settle`` counts the frames Kafka refused (e.g. one
    too large) with those it has not acknowledged: progress is recorded only when both are none."""

    def __init__(self, settings: Settings) -> None:
        self._metrics = Metrics()
        self.producer = FrameProducer(
            librdkafka_config(settings),
            settings.kafka_topic,
            self._metrics,
            queue_frames=settings.ingestor_queue_frames,
            queue_mib=settings.ingestor_queue_mib,
            backfill=True,
        )
        self.send = self.producer.send

    def settle(self, timeout: float) -> int:
        return self.producer.settle(timeout) + int(self._metrics.total("delivery_errors_total"))


@dataclass
class Backfill:
    """One venue and symbol's days from ``first`` to ``last``, into ``sink``."""

    archive: Archive
    sink: Sink
    progress: Progress
    symbol: str
    first: date
    last: date
    trades_per_second: int
    stop: threading.Event
    say: Say
    venue: str = "binance"
    chunk_trades: int = CHUNK_TRADES

    def run(self) -> Summary:
        days = [self.first + timedelta(days=n) for n in range((self.last - self.first).days + 1)]
        known = self.progress.read()
        summary = Summary(len(days), done_before=sum(known[d].done for d in days if d in known))
        reporter = Reporter(summary, self.label, self.say)
        pace = Pace(self.trades_per_second, self.stop)
        for day in days:
            if self.stop.is_set():
                raise BackfillError(f"interrupted at {day}: run the same command again to resume")
            before = known.get(day, DayProgress(None, 0, done=False))
            if before.done:
                continue
            with tempfile.TemporaryFile() as zipped:
                if not self.archive.download(self.symbol, day, zipped):
                    summary.missing.append(day)
                    self.say(f"{self.label}: {day} is not in the archive (not published yet?): skipped")
                    continue
                self._send_day(day, zipped, before, summary, reporter, pace)
            summary.done += 1
            reporter.line(day, 0.0, now=True)
        return summary

    def _rows(self, day: date, zipped: IO[bytes], summary: Summary) -> Iterator[tuple[Row, float]]:
        """Each good row of ``day``'s file with the share of the file read; bad ones counted and named."""
        try:
            archive = zipfile.ZipFile(zipped)
            members = archive.infolist()
        except zipfile.BadZipFile as exc:
            raise BackfillError(f"the file of {day} is no zip, though its checksum matched: {exc}") from None
        if len(members) != 1:
            raise BackfillError(f"the file of {day} holds {len(members)} files, not one CSV")
        size, read = max(members[0].file_size, 1), 0
        with archive.open(members[0]) as raw:
            for number, line in enumerate(io.TextIOWrapper(raw, "utf-8", errors="replace"), start=1):
                read += len(line)
                try:
                    yield parse_row(line, day), read / size
                except ValueError as exc:
                    summary.malformed += 1
                    if summary.malformed <= MALFORMED_SHOWN:
                        self.say(f"{self.label}: {members[0].filename} line {number} skipped, malformed: {exc}")

    @property
    def label(self) -> str:
        return f"backfill {self.venue} {self.symbol}"

    def _send_day(
        self, day: date, zipped: IO[bytes], before: DayProgress, summary: Summary, reporter: Reporter, pace: Pace
    ) -> None:
        key, exchange = f"{self.venue}:{self.symbol}".encode(), self.venue.encode()
        resume_after = before.last_trade_id
        last, sent, in_chunk = resume_after, before.trades, 0
        for row, fraction in self._rows(day, zipped, summary):
            if resume_after is not None and row.trade_id <= resume_after:
                continue  # Kafka took it in an earlier run (the archive lists a day's trades by id)
            self.sink.send(exchange, key, frame(self.symbol, row), time.time_ns() // 1_000)
            last, sent, in_chunk = row.trade_id, sent + 1, in_chunk + 1
            summary.trades += 1
            if in_chunk == self.chunk_trades:
                self._commit(day, DayProgress(last, sent, done=False))
                in_chunk = 0
            if self.stop.is_set():
                self._commit(day, DayProgress(last, sent, done=False))
                raise BackfillError(f"interrupted in {day} after trade {last}: run the same command again to resume")
            reporter.line(day, fraction)
            pace.take()
        self._commit(day, DayProgress(last, sent, done=True))

    def _commit(self, day: date, progress: DayProgress) -> None:
        """Record ``progress`` once Kafka has acknowledged every frame sent before it."""
        if self.sink.settle(KAFKA_TIMEOUT_S):
            raise BackfillError(
                f"Kafka refused frames of {day} or did not acknowledge them within {KAFKA_TIMEOUT_S:.0f} s; their "
                "progress is not recorded, so a run after the fault sends them again"
            )
        self.progress.record(day, progress)


def _day(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date such as 2024-08-08") from None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("venue", help=f"the venue whose archive to read: {', '.join(ARCHIVE_VENUES)}")
    parser.add_argument("symbol", help="canonical symbol, e.g. BTC-USDT")
    for flag, dest, what in (("--from", "first", "first day"), ("--to", "last", "last day, included")):
        parser.add_argument(flag, dest=dest, type=_day, required=True, metavar="DATE", help=f"{what}, YYYY-MM-DD (UTC)")


def run(settings: Settings, args: argparse.Namespace, stop: threading.Event, say: Say) -> int:
    """Run the backfill ``args`` ask for; what it does and why it stops go to ``say``; returns the exit code."""
    if args.venue not in ARCHIVE_VENUES:
        say(f"backfill reads {', '.join(ARCHIVE_VENUES)} only for now, not {args.venue!r}")
        return exits.MISCONFIGURED
    if args.first > args.last:
        say(f"--from {args.first} is after --to {args.last}")
        return exits.MISCONFIGURED
    try:
        settings.with_(symbols=(args.symbol,))
    except SettingsError:
        say(f"{args.symbol!r} is no canonical symbol such as BTC-USDT")
        return exits.MISCONFIGURED
    KAFKA_LOG.addFilter(OncePerKind())
    sink = KafkaSink(settings)
    run = Backfill(
        Archive(settings.backfill_url),
        sink,
        ProgressTopic(settings, args.venue, args.symbol),
        args.symbol,
        args.first,
        args.last,
        settings.backfill_trades_per_second,
        stop,
        say,
        venue=args.venue,
    )
    say(
        f"backfill {args.venue} {args.symbol} {args.first}..{args.last} from {settings.backfill_url} into "
        f"{settings.kafka_topic}, at most {settings.backfill_trades_per_second:,} trades/s"
    )
    try:
        summary = run.run()
    except BackfillError as exc:
        say(f"backfill stopped: {exc}")
        return exc.code
    finally:
        sink.producer.flush(KAFKA_TIMEOUT_S)
    missing = summary.missing
    say(
        f"backfill {args.venue} {args.symbol} finished: {summary.done} days sent now, {summary.done_before} sent "
        f"before, {summary.trades:,} trades, {summary.malformed} malformed rows skipped, {len(missing)} days not in "
        f"the archive{': ' + ', '.join(map(str, missing)) if missing else ''}"
    )
    return exits.OK


def to_stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    logs.configure("backfill")
    parser = argparse.ArgumentParser(
        prog="python -m ingestion.backfill", description="A venue's archived trades into Kafka, marked backfill."
    )
    add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        settings = Settings.from_env()
    except SettingsError as exc:
        to_stderr(f"bad settings: {exc}")
        return exits.MISCONFIGURED
    return run(settings, args, logs.stop_on_signals(logging.getLogger("backfill")), to_stderr)


if __name__ == "__main__":
    sys.exit(main())
