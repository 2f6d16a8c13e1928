"""The ingestor run in-process against a test venue, its Kafka producer replaced by a list."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field

from core.venues import Exchange
from ingestion.config import Connection
from ingestion.ingestor import Ingestor
from ingestion.metrics import Metrics


@dataclass
class Sent:
    """What the ingestor gave its producer."""

    records: list[tuple[bytes, bytes, bytes, int]] = field(default_factory=list)  # exchange, key, frame, receive time
    filled: list[str] = field(default_factory=list)  # the frames of those records sent as filled
    lock: threading.Lock = field(default_factory=threading.Lock)

    def send(self, exchange: bytes, key: bytes, frame: bytes, received_at_us: int, *, filled: bool = False) -> None:
        with self.lock:
            self.records.append((exchange, key, frame, received_at_us))
            if filled:
                self.filled.append(frame.decode())

    def frames(self) -> list[str]:
        with self.lock:
            return [record[2].decode() for record in self.records]

    def binance_ids(self) -> list[int]:
        return [json.loads(frame)["data"]["t"] for frame in self.frames()]

    def kraken_ids(self) -> list[int]:
        return [trade["trade_id"] for frame in self.frames() for trade in json.loads(frame)["data"]]


@dataclass
class Running:
    ingestor: Ingestor
    sent: Sent
    metrics: Metrics

    def metric(self, name: str, **labels: str) -> float:
        return self.metrics.value(name, **labels)


@contextmanager
def ingesting(
    exchange: Exchange, url: str, gap_grace: float = 0.3, rest_urls: Mapping[str, str] | None = None
) -> Iterator[Running]:
    """The ingestor connected to ``url`` for ``exchange`` (whose base URL it is), until the block ends; ``rest_urls``:
    where it fills each venue's gaps from."""
    metrics = Metrics()
    sent = Sent()
    ingestor = Ingestor([Connection(exchange, exchange.url(url))], sent, metrics, gap_grace, rest_urls)
    ingestor.start()
    try:
        yield Running(ingestor, sent, metrics)
    finally:
        ingestor.stop()


def wait_until(condition: Callable[[], object], what: str, timeout: float = 15.0) -> None:
    """Poll ``condition`` until it holds; a generous bound, not a performance check."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout:g} s: {what}")
        time.sleep(0.05)
