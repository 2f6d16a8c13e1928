"""A local WebSocket server that speaks Binance's combined-stream protocol, fed by synthetic trades or recordings.

With it the whole pipeline runs without internet: point ``CRYPTOLAKE_BINANCE_URL`` at ``ws://127.0.0.1:<port>``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from websockets.asyncio.server import ServerConnection, serve

from cryptolake import logs
from ingestion import synthetic

log = logging.getLogger("venue")


@dataclass(frozen=True)
class TimedFrame:
    at: float  # seconds on the source's clock: event time for synthetic trades, capture time for recordings
    stream: str
    text: str


def synthetic_frames(
    symbols: Sequence[str], *, seed: int, start_ms: int, rate: float, count: int | None
) -> Iterator[TimedFrame]:
    for trade in synthetic.generate(symbols, seed=seed, start_ms=start_ms, rate=rate, count=count):
        yield TimedFrame(trade.time_ms / 1000, trade.binance_stream, trade.binance_frame())


def recorded_frames(paths: Sequence[Path]) -> Iterator[TimedFrame]:
    """``recv`` frames of ``*.replay.jsonl`` recordings, merged in capture-time order."""
    frames = []
    for path in paths:
        for line in path.read_text().splitlines():
            entry = json.loads(line)
            if entry["dir"] == "recv":
                stream = json.loads(entry["raw"]).get("stream", "")
                frames.append(TimedFrame(entry["t"], stream, entry["raw"]))
    frames.sort(key=lambda f: f.at)
    return iter(frames)


class Venue:
    """Serves one shared sequence of frames: a client that reconnects continues where the last one stopped."""

    def __init__(self, frames: Iterator[TimedFrame], speed: float) -> None:
        self._frames = frames
        self._speed = speed  # source seconds per wall second; inf sends as fast as the client reads
        self._lock = asyncio.Lock()
        self._origin: tuple[float, float] | None = None  # (source time, wall time) of the first frame
        self.sent = 0

    async def handler(self, ws: ServerConnection) -> None:
        query = parse_qs(urlsplit(ws.request.path if ws.request else "").query)
        streams = set(query.get("streams", [""])[0].split("/"))
        log.info("client connected", extra=logs.fields(streams=sorted(streams)))
        async with self._lock:  # one reader of the shared sequence at a time
            for frame in self._frames:
                await self._pace(frame.at)
                if frame.stream in streams:
                    await ws.send(frame.text)
                    self.sent += 1
            log.info("sequence complete", extra=logs.fields(sent=self.sent))
        await ws.wait_closed()

    async def _pace(self, at: float) -> None:
        if self._speed == float("inf"):
            return
        if self._origin is None:
            self._origin = (at, time.monotonic())
        due = self._origin[1] + (at - self._origin[0]) / self._speed
        delay = due - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)


async def run(venue: Venue, host: str, port: int, ready: asyncio.Event | None = None) -> None:
    async with serve(venue.handler, host, port, max_size=None) as server:
        log.info("listening", extra=logs.fields(url=f"ws://{host}:{port}"))
        if ready is not None:
            ready.set()
        await server.serve_forever()


def parse_speed(text: str) -> float:
    return float("inf") if text == "max" else float(text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--symbols", default="BTC-USDT,ETH-USDT", help="synthetic source: canonical symbols")
    parser.add_argument("--rate", type=float, default=200.0, help="synthetic source: trades per second")
    parser.add_argument("--count", type=int, default=None, help="synthetic source: stop after this many trades")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--start-ms", type=int, default=None, help="event time of the start (default: now)")
    parser.add_argument("--recording", type=Path, nargs="*", default=[], help="replay these recordings instead")
    parser.add_argument("--speed", type=parse_speed, default=1.0, help="N times real time, or max")
    args = parser.parse_args(argv)
    logs.configure("venue")
    if args.recording:
        frames = recorded_frames(args.recording)
    else:
        start_ms = args.start_ms if args.start_ms is not None else int(time.time() * 1000)
        symbols = args.symbols.split(",")
        frames = synthetic_frames(symbols, seed=args.seed, start_ms=start_ms, rate=args.rate, count=args.count)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run(Venue(frames, args.speed), args.host, args.port))
    return 0


if __name__ == "__main__":
    sys.exit(main())
