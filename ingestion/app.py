"""The ingestor: one venue's WebSocket frames into Kafka, unchanged, keyed by venue and symbol."""

from __future__ import annotations

import logging
import random
import signal
import sys
import threading
import time
from types import FrameType

import websocket

from cryptolake import logs
from cryptolake.settings import Settings
from ingestion.exchanges import Binance, Exchange, FrameKind
from ingestion.metrics import Metrics, serve
from ingestion.producer import FrameProducer

log = logging.getLogger("ingestion")

SILENCE_SECONDS = 60.0
FLUSH_SECONDS = 10.0


class Backoff:
    """Capped exponential backoff with full jitter, so many ingestors do not reconnect in step."""

    def __init__(self, initial: float = 0.5, cap: float = 30.0) -> None:
        self.initial, self.cap, self.attempt = initial, cap, 0

    def next(self) -> float:
        delay = random.uniform(0, min(self.cap, self.initial * 2**self.attempt))
        self.attempt += 1
        return delay

    def reset(self) -> None:
        self.attempt = 0


class Ingestor:
    def __init__(self, exchange: Exchange, base_url: str, producer: FrameProducer, metrics: Metrics) -> None:
        self.exchange = exchange
        self.url = exchange.url(base_url)
        self.producer = producer
        self.metrics = metrics
        self.stop = threading.Event()

    def run(self) -> None:
        """Stay connected until :attr:`stop` is set, reconnecting after any failure."""
        backoff = Backoff()
        while not self.stop.is_set():
            try:
                self._session(backoff)
            except (websocket.WebSocketException, OSError) as exc:
                self.metrics.ready.clear()
                self.metrics.inc("cryptolake_ingestor_reconnects_total", exchange=self.exchange.name)
                delay = backoff.next()
                log.warning("connection lost", extra=logs.fields(url=self.url, error=str(exc), retry_in_s=delay))
                self.stop.wait(delay)

    def _session(self, backoff: Backoff) -> None:
        ws = websocket.create_connection(self.url, timeout=10)
        try:
            for message in self.exchange.subscribe_messages():
                ws.send(message)
            self.metrics.ready.set()
            log.info("connected", extra=logs.fields(url=self.url))
            ws.settimeout(1.0)
            last_frame = time.monotonic()
            while not self.stop.is_set():
                try:
                    opcode, data = ws.recv_data()
                except websocket.WebSocketTimeoutException:
                    self.producer.poll(0)
                    if time.monotonic() - last_frame > SILENCE_SECONDS:
                        raise websocket.WebSocketException(f"silent for {SILENCE_SECONDS:.0f} s") from None
                    continue
                if opcode == websocket.ABNF.OPCODE_CLOSE:
                    raise websocket.WebSocketConnectionClosedException("closed by the venue")
                last_frame = time.monotonic()
                backoff.reset()
                self.handle(data, time.time_ns() // 1000)
        finally:
            ws.close()

    def handle(self, frame: bytes, received_at_us: int) -> None:
        name = self.exchange.name
        try:
            kind, symbol = self.exchange.classify(frame.decode())
        except UnicodeDecodeError:
            kind, symbol = FrameKind.ERROR, None
        if kind is FrameKind.TRADE and symbol is not None:
            self.producer.send(name, self.exchange.kafka_key(symbol), frame, received_at_us)
            self.metrics.inc("cryptolake_ingestor_frames_total", exchange=name, symbol=symbol)
            self.metrics.inc("cryptolake_ingestor_bytes_total", len(frame), exchange=name, symbol=symbol)
        elif kind is FrameKind.ERROR:
            self.metrics.inc("cryptolake_ingestor_error_frames_total", exchange=name)
            log.warning(
                "venue sent an error or unreadable frame", extra=logs.fields(frame=frame[:500].decode(errors="replace"))
            )
        else:
            self.metrics.inc("cryptolake_ingestor_control_frames_total", exchange=name)


def main() -> int:
    logs.configure("ingestor")
    settings = Settings.from_env()
    metrics = Metrics()
    server = serve(metrics, settings.ingestor_http_port)
    producer = FrameProducer(settings.kafka_bootstrap, settings.kafka_topic, metrics)
    ingestor = Ingestor(Binance(settings.symbols), settings.binance_url, producer, metrics)

    def request_stop(signum: int, _frame: FrameType | None) -> None:
        log.info("stopping", extra=logs.fields(signal=signal.Signals(signum).name))
        ingestor.stop.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    log.info("starting", extra=logs.fields(url=ingestor.url, topic=settings.kafka_topic))
    ingestor.run()
    undelivered = producer.flush(FLUSH_SECONDS)
    server.shutdown()
    if undelivered:
        log.error("frames left undelivered at exit", extra=logs.fields(undelivered=undelivered))
        return 1
    log.info("stopped, every frame delivered")
    return 0


if __name__ == "__main__":
    sys.exit(main())
