"""``cryptolake record``: a venue's live frames into a ``*.replay.jsonl`` recording."""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from types import FrameType

from core.venues import Parsed
from cryptolake.venue.recordings import Writer
from ingestion.config import feed_class
from ingestion.connection import Link
from ingestion.metrics import Metrics

STOP_SECONDS = 5.0


class RecordingSink:
    """Writes what a session sends and receives; stops the recording after ``limit`` received frames."""

    def __init__(self, writer: Writer, stop: threading.Event, limit: int | None) -> None:
        self._writer = writer
        self._stop = stop
        self._limit = limit

    def sent(self, text: str) -> None:
        self._writer.write("send", text)

    def received(self, frame: bytes, parsed: Parsed, received_at_us: int) -> None:
        if self._stop.is_set():
            return
        self._writer.write("recv", frame.decode())
        if self._limit is not None and self._writer.received >= self._limit:
            self._stop.set()

    def tick(self) -> None:
        """Nothing to do between frames."""


def record(
    feed: str, symbols: Sequence[str], out: Path, *, base_url: str | None, seconds: float | None, frames: int | None
) -> int:
    """Record until Ctrl-C, SIGTERM, ``seconds`` or ``frames`` received; returns how many frames were written."""
    cls = feed_class(feed)
    stop = threading.Event()

    def request_stop(_signum: int, _frame: FrameType | None) -> None:
        stop.set()

    handled = (signal.SIGTERM, signal.SIGINT) if threading.current_thread() is threading.main_thread() else ()
    previous = {signum: signal.signal(signum, request_stop) for signum in handled}
    try:
        with out.open("w") as file:
            writer = Writer(file)
            sink = RecordingSink(writer, stop, frames)
            links = []
            for group in cls.connection_groups(symbols):
                exchange = cls(group)
                url = exchange.url(base_url or cls.endpoint)
                links.append(Link(exchange, url, sink, Metrics(), stop, f"{cls.feed}:{','.join(group)}"))
            for link in links:
                link.start()
            stop.wait(seconds)
            stop.set()
            deadline = time.monotonic() + STOP_SECONDS
            for link in links:
                link.join(max(0.0, deadline - time.monotonic()))
            return writer.received
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
