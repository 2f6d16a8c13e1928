"""A local WebSocket server speaking the venues' protocols, fed by recordings or by synthetic trades of several venues.

Each feed is served under its own path, ``/<feed>`` followed by the venue's (``ws://127.0.0.1:P/kraken/v2``), which
is what the ingestor opens with ``CRYPTOLAKE_VENUE_URL=ws://127.0.0.1:P``; Binance's also without the prefix, so
``CRYPTOLAKE_BINANCE_URL=ws://127.0.0.1:P`` works too. Application pings are answered as the venue would.

Once a feed's frames are all sent (a recording has ended) its connections stay open and idle, as a live venue's do
when its market is quiet: the ingestor stays connected and ready, and its reconnects keep meaning trouble.

Plain HTTP on the same port serves each venue's REST trade endpoint under the same prefix
(``http://127.0.0.1:P/binance/api/v3/historicalTrades?...``), listing the trades of the frames played so far, with
the venue's page size: where the ingestor fills gaps from when ``CRYPTOLAKE_VENUE_URL`` points at this venue. A
sequence may cut its connection once after some frames and play the next ones to nobody, as a venue goes on trading
while a client reconnects: the trades a gap fill must fetch.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from http import HTTPStatus
from pathlib import Path
from urllib.parse import parse_qs, parse_qsl, urlsplit

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.frames import Frame, Opcode
from websockets.http11 import Request, Response

from core import logs
from core.venues import LAKE_VENUES, Binance, Exchange, LakeVenue, RestQuery, RestTrade
from core.venues.base import UNREADABLE
from cryptolake.venue import recordings, synthetic
from cryptolake.venue.recordings import TimedFrame

log = logging.getLogger("venue")

BATCH_FRAMES = 256  # frames written to the socket at once when they are due together
WRITE_BUFFER_BYTES = 1 << 20  # wait for the client to read when this much is waiting to be sent
# A WebSocket ping this often keeps an idle connection alive: well within the ingestor's shortest silence watchdog
# (10 s, Coinbase's and Kraken's, whose live venues send heartbeats that a recording's end or pause does not).
KEEPALIVE_SECONDS = 2.0


def synthetic_sequences(
    venues: Sequence[str],
    symbols: Sequence[str],
    *,
    seed: int,
    start_ms: int,
    rate: float,
    count: int | None,
    speed: float,
    hold_after: int | None = None,
) -> list[FeedSequence]:
    """A sequence per venue, of its trades in ``synthetic.generate``'s stream of all ``venues``; ``hold_after``
    counts each venue's frames."""

    def frames(venue: str) -> Iterator[TimedFrame]:
        # Each venue's sequence generates the whole stream and keeps its own: a venue whose client is slow or absent
        # holds back no other venue's, and no buffer grows for it.
        stream = synthetic.generate(symbols, seed=seed, start_ms=start_ms, rate=rate, count=count, venues=venues)
        for trade in stream:
            if trade.venue == venue:
                yield TimedFrame(trade.time_ms / 1000, trade.stream, trade.frame())

    synthetic.check_venues(venues)
    feeds = [LAKE_VENUES[venue] for venue in venues]
    return [FeedSequence(feed, frames(feed.name), speed, route_path(feed, symbols), hold_after) for feed in feeds]


@dataclass(frozen=True)
class Cut:
    """Cut the connection once ``after`` frames are sent, and play the next ``missed`` frames to nobody."""

    after: int
    missed: int


def _select(trades: list[RestTrade], query: RestQuery) -> list[RestTrade]:
    """The trades a REST request for ``query`` gets: from an id or after a time, in id order, else the latest."""
    trades = sorted(trades, key=lambda t: t.trade_id)
    if query.from_id is not None:
        return [t for t in trades if t.trade_id >= query.from_id][: query.limit]
    if query.after_us is not None:
        return [t for t in trades if t.time_us > query.after_us][: query.limit]
    return trades[-query.limit :]


def _wire(text: str) -> bytes:
    """A server's text frame as it goes on the wire (servers do not mask)."""
    return Frame(Opcode.TEXT, text.encode()).serialize(mask=False)


class FeedSequence:
    """One feed's frames, shared by its connections: a client that reconnects continues where the last one stopped."""

    def __init__(
        self,
        feed: type[Exchange],
        frames: Iterator[TimedFrame],
        speed: float,
        path: str,
        hold_after: int | None = None,
        cut: Cut | None = None,
    ) -> None:
        self.feed = feed
        self.route = f"/{feed.feed}{path}"  # where the venue's clients connect, e.g. /bybit/v5/public/linear
        self._frames = frames
        self._speed = speed  # source seconds per wall second; inf sends as fast as the client reads
        self._lock = asyncio.Lock()  # one reader of the sequence at a time
        self._origin: tuple[float, float] | None = None  # (source time, wall time) of the first frame
        self._hold_after = hold_after  # frames sent before the rest waits for release()
        self._released = asyncio.Event()
        self._cut = cut
        # The trades of the frames played so far, by canonical symbol and in id order: what REST lists.
        self._lists = feed if issubclass(feed, LakeVenue) and feed.rest is not None else None
        self.history: dict[str, list[RestTrade]] = {}
        self.sent = 0
        self.missed = 0  # frames played to nobody while cut
        self.complete = False

    def release(self) -> None:
        """Send what is held back."""
        self._released.set()

    async def play(self, ws: ServerConnection, streams: set[str] | None) -> None:
        """Send the rest of the sequence, or of the ``streams`` in it; stop early if the client goes."""
        async with self._lock:
            batch: list[bytes] = []
            for frame in self._frames:
                if self._hold_after is not None and self.sent + len(batch) >= self._hold_after:
                    if not await self._write(ws, batch):
                        return
                    log.info("holding", extra=logs.fields(feed=self.feed.feed, sent=self.sent))
                    await self._released.wait()
                    self._hold_after, self._origin = None, None  # the rest keeps its pace from here
                delay = self._delay(frame.at)
                missing = self._cut is not None and self.missed > 0  # playing to nobody: no client to lose
                if delay > 0:
                    if not missing and not await self._write(ws, batch):
                        return
                    await asyncio.sleep(delay)
                self._listed(frame.text)
                if self._cut is not None and self.sent + len(batch) >= self._cut.after:
                    if not self.missed:
                        await self._write(ws, batch)
                        log.info("cutting the connection", extra=logs.fields(feed=self.feed.feed, sent=self.sent))
                        ws.transport.abort()  # no close frame: the client finds the connection lost
                    self.missed += 1
                    if self.missed >= self._cut.missed:
                        self._cut = None
                        if ws.transport.is_closing():
                            return  # the rest goes to the client's next connection
                    continue
                if streams is None or frame.stream in streams:
                    batch.append(_wire(frame.text))
                    if len(batch) >= BATCH_FRAMES and not await self._write(ws, batch):
                        return
            if await self._write(ws, batch):
                self.complete = True
                log.info("sequence complete", extra=logs.fields(feed=self.feed.feed, sent=self.sent))

    def _listed(self, text: str) -> None:
        if self._lists is None:
            return
        try:
            found = self._lists.listed(text)
        except UNREADABLE:
            return  # what the venue sends besides trades, or a malformed frame: no trade to list
        for symbol, trade in found:
            self.history.setdefault(symbol, []).append(trade)

    async def _write(self, ws: ServerConnection, batch: list[bytes]) -> bool:
        """Write the batch (frames whole, so websockets' own pongs and closes fit in between); False if gone."""
        transport = ws.transport
        if transport.is_closing():
            return False
        if batch:
            transport.write(b"".join(batch))
            self.sent += len(batch)
            batch.clear()
        while transport.get_write_buffer_size() > WRITE_BUFFER_BYTES and not transport.is_closing():
            await asyncio.sleep(0.001)
        return not transport.is_closing()

    def _delay(self, at: float) -> float:
        if self._speed == float("inf"):
            return 0.0
        if self._origin is None:
            self._origin = (at, time.monotonic())
        return self._origin[1] + (at - self._origin[0]) / self._speed - time.monotonic()


class LocalVenue:
    """Serves each sequence at its route, pinging each client every ``keepalive`` seconds."""

    def __init__(self, sequences: Sequence[FeedSequence], keepalive: float = KEEPALIVE_SECONDS) -> None:
        self.sequences = {s.route: s for s in sequences}
        self.keepalive = keepalive

    def release(self) -> None:
        for sequence in self.sequences.values():
            sequence.release()

    def process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        """Answer a plain HTTP request (a venue's REST trade endpoint); None lets a WebSocket handshake go on."""
        if request.headers.get("Upgrade", "").lower() == "websocket":
            return None
        url = urlsplit(request.path)
        feed, _, rest_path = url.path.lstrip("/").partition("/")
        served = [s for s in self.sequences.values() if s.feed.feed == feed]
        venue = served[0].feed if served else None
        if venue is None or not issubclass(venue, LakeVenue) or venue.rest is None:
            return connection.respond(HTTPStatus.NOT_FOUND, f"no REST API at {url.path}\n")
        try:
            query = venue.rest_query(f"/{rest_path}", dict(parse_qsl(url.query)))
        except UNREADABLE as exc:
            return connection.respond(HTTPStatus.BAD_REQUEST, f"bad request: {type(exc).__name__}: {exc}\n")
        if query is None:
            return connection.respond(HTTPStatus.NOT_FOUND, f"no REST endpoint at {url.path}\n")
        symbol = next((s for q in served for s in q.history if venue.rest_symbol(s) == query.symbol), None)
        if symbol is None:
            return connection.respond(HTTPStatus.OK, venue.rest_answer(query.symbol, []))
        listed = [t for sequence in served for t in sequence.history.get(symbol, ())]
        limited = RestQuery(symbol, min(query.limit, venue.rest.page), query.from_id, query.after_us)
        return connection.respond(HTTPStatus.OK, venue.rest_answer(symbol, _select(listed, limited)))

    async def handler(self, ws: ServerConnection) -> None:
        url = urlsplit(ws.request.path if ws.request else "/")
        sequence = self.sequences.get(url.path) or self.sequences.get(f"/{Binance.feed}{url.path}")
        if sequence is None:
            await ws.close(1008, f"no feed at {url.path}")
            return
        streams = None
        if sequence.feed is Binance:
            streams = set(parse_qs(url.query).get("streams", [""])[0].split("/"))
        log.info("client connected", extra=logs.fields(route=sequence.route, query=url.query))
        helpers = [asyncio.create_task(_answer_pings(ws, sequence.feed)), asyncio.create_task(self._ping(ws))]
        try:
            await sequence.play(ws, streams)
            await ws.wait_closed()
        finally:
            for task in helpers:
                task.cancel()

    async def _ping(self, ws: ServerConnection) -> None:
        with contextlib.suppress(ConnectionClosed):
            while True:
                await asyncio.sleep(self.keepalive)
                await ws.ping()  # websocket-client answers it, and counts it as a sign of life


def route_path(feed: type[Exchange], symbols: Sequence[str]) -> str:
    """The path of the venue's URL for these symbols, e.g. ``/v5/public/linear``."""
    return urlsplit(feed(symbols).url("")).path


async def _answer_pings(ws: ServerConnection, feed: type[Exchange]) -> None:
    with contextlib.suppress(Exception):  # the client went; nothing to answer
        async for message in ws:
            if feed.ping_text is not None and feed.pong_text is not None and message == feed.ping_text:
                await ws.send(feed.pong_text)


async def open_server(venue: LocalVenue, host: str, port: int) -> Server:
    server = await serve(
        venue.handler,
        host,
        port,
        max_size=None,
        compression=None,
        close_timeout=2,
        process_request=venue.process_request,
    )
    log.info("listening", extra=logs.fields(url=f"ws://{host}:{server.sockets[0].getsockname()[1]}"))
    return server


async def run(venue: LocalVenue, host: str, port: int) -> None:
    asyncio.get_running_loop().add_signal_handler(signal.SIGUSR1, venue.release)
    server = await open_server(venue, host, port)
    await server.serve_forever()


class VenueThread:
    """A :class:`LocalVenue` on a free port of 127.0.0.1, served by a background thread."""

    def __init__(self, venue: LocalVenue) -> None:
        self.venue = venue
        self._loop = asyncio.new_event_loop()
        self._server: Server | None = None
        self._thread = threading.Thread(target=self._loop.run_forever, name="local-venue", daemon=True)

    def start(self) -> int:
        """Start serving; returns the port."""
        self._thread.start()
        server = asyncio.run_coroutine_threadsafe(open_server(self.venue, "127.0.0.1", 0), self._loop).result(10)
        self._server = server
        return int(server.sockets[0].getsockname()[1])

    def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            asyncio.run_coroutine_threadsafe(self._server.wait_closed(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)


def recorded_sequences(
    loaded: Sequence[recordings.Recording], speed: float, repeat_count: int = 1, cut: Cut | None = None
) -> list[FeedSequence]:
    """One sequence per route, its recordings' frames merged in capture-time order; ``cut``: each cuts its client
    once."""
    by_route: dict[tuple[type[Exchange], str], list[TimedFrame]] = {}
    for recording in loaded:
        key = (recording.feed, route_path(recording.feed, recording.symbols))
        by_route.setdefault(key, []).extend(recording.frames)
    sequences = []
    for (feed, path), frames in by_route.items():
        frames.sort(key=lambda f: f.at)
        sequences.append(FeedSequence(feed, _repeated(frames, repeat_count), speed, path, cut=cut))
    return sequences


def _repeated(frames: list[TimedFrame], count: int) -> Iterator[TimedFrame]:
    # Each repetition later on the source clock, so that paced replays keep their pace.
    span = frames[-1].at - frames[0].at + 1.0
    for n in range(count):
        for frame in frames:
            yield TimedFrame(frame.at + n * span, frame.stream, frame.text)


def parse_speed(text: str) -> float:
    return float("inf") if text == "max" else float(text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--symbols", default="BTC-USDT,ETH-USDT", help="synthetic source: canonical symbols")
    parser.add_argument(
        "--venues", default=Binance.name, help=f"synthetic source: some of {','.join(synthetic.ACTIVITY)}"
    )
    parser.add_argument("--rate", type=float, default=200.0, help="synthetic source: trades per second")
    parser.add_argument("--count", type=int, default=None, help="synthetic source: stop after this many trades")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--start-ms", type=int, default=None, help="event time of the start (default: now)")
    parser.add_argument("--recording", type=Path, nargs="*", default=[], help="replay these recordings instead")
    parser.add_argument("--repeat", type=int, default=1, help="recordings: play them this many times over")
    parser.add_argument("--speed", type=parse_speed, default=1.0, help="N times real time, or max")
    parser.add_argument(
        "--hold-after",
        type=int,
        default=None,
        help="synthetic source: hold each venue's rest after its first N trades, until SIGUSR1",
    )
    parser.add_argument(
        "--cut",
        type=int,
        nargs=2,
        metavar=("AFTER", "MISSED"),
        help="recordings: cut each client once after AFTER frames, and play the next MISSED frames to nobody",
    )
    args = parser.parse_args(argv)
    logs.configure("venue")
    if args.recording:
        loaded = [recordings.load(path) for path in args.recording]
        cut = Cut(*args.cut) if args.cut else None
        sequences = recorded_sequences(loaded, args.speed, args.repeat, cut)
    else:
        start_ms = args.start_ms if args.start_ms is not None else int(time.time() * 1000)
        try:
            sequences = synthetic_sequences(
                args.venues.split(","),
                args.symbols.split(","),
                seed=args.seed,
                start_ms=start_ms,
                rate=args.rate,
                count=args.count,
                speed=args.speed,
                hold_after=args.hold_after,
            )
        except ValueError as exc:
            parser.error(str(exc))
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run(LocalVenue(sequences), args.host, args.port))
    return 0


if __name__ == "__main__":
    sys.exit(main())
