"""Recorded WebSocket sessions, ``*.replay.jsonl``: one JSON object a line, ``{"dir", "t", "raw"}``.

``dir`` is ``send`` for what the client sent (subscribe requests) and ``recv`` for what the venue sent; ``t`` is unix
seconds on the capturing host; ``raw`` is the frame's text exactly as on the wire.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from core.venues import FEEDS, Exchange, FrameKind
from core.venues.base import UNREADABLE


@dataclass(frozen=True)
class TimedFrame:
    at: float  # seconds on the source's clock: event time for synthetic trades, capture time for recordings
    stream: str  # Binance's stream name, which its combined-stream URL subscribes to; else empty
    text: str


@dataclass(frozen=True)
class Recording:
    path: Path
    feed: type[Exchange]
    frames: list[TimedFrame]  # the venue's, in capture order
    symbols: list[str]  # canonical symbols of its trades
    trade_frames: int


def received(path: Path) -> list[tuple[float, str]]:
    """(capture time, text) of every ``recv`` line."""
    found = []
    with path.open() as lines:
        for number, line in enumerate(lines, 1):
            try:
                entry = json.loads(line)
                if entry["dir"] == "recv":
                    found.append((float(entry["t"]), entry["raw"]))
            except UNREADABLE as exc:
                raise ValueError(f"{path}, line {number}: not a recorded frame ({type(exc).__name__}: {exc})") from None
    return found


def trade_frames(feed: type[Exchange], texts: list[str]) -> int:
    reader = feed(())
    return sum(1 for text in texts if reader.classify(text)[0] is FrameKind.TRADE)


def load(path: Path) -> Recording:
    """A recording, its venue recognised as the feed whose parser finds the most trades in it."""
    lines = received(path)
    texts = [text for _, text in lines]
    counts = Counter({feed: trade_frames(cls, texts) for feed, cls in FEEDS.items()})
    if not counts or counts.most_common(1)[0][1] == 0:
        raise ValueError(f"{path}: no venue's parser finds a trade in it")
    cls = FEEDS[counts.most_common(1)[0][0]]
    frames = [TimedFrame(at, _stream(cls, text), text) for at, text in lines]
    return Recording(path, cls, frames, cls.symbols_in(texts), counts[cls.feed])


def _stream(cls: type[Exchange], text: str) -> str:
    if cls.feed != "binance":
        return ""
    try:
        stream = json.loads(text).get("stream", "")
    except UNREADABLE:
        return ""
    return stream if isinstance(stream, str) else ""


class Writer:
    """Writes a session as it happens, from any thread, in the format above."""

    def __init__(self, out: TextIO) -> None:
        self._out = out
        self._lock = threading.Lock()
        self.received = 0

    def write(self, direction: str, text: str) -> None:
        line = json.dumps({"dir": direction, "t": time.time(), "raw": text}, separators=(",", ":"))
        with self._lock:
            self._out.write(line + "\n")
            if direction == "recv":
                self.received += 1
