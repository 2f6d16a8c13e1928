"""A WebSocket server on 127.0.0.1 whose n-th connection plays the n-th script a test gives it: faults on demand."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from types import TracebackType

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.frames import Frame, Opcode


@dataclass
class Seen:
    """What the server saw of one connection."""

    path: str
    opened: float = field(default_factory=time.monotonic)
    closed: float | None = None
    messages: list[str] = field(default_factory=list)  # text the client sent, in order
    queue: asyncio.Queue[str | None] = field(default_factory=asyncio.Queue)  # the same, then None once closed

    async def next_message(self, timeout: float = 5.0) -> str | None:
        """The client's next message; None once the connection is closed."""
        return await asyncio.wait_for(self.queue.get(), timeout)


Script = Callable[[ServerConnection, Seen], Awaitable[None]]


async def hold(ws: ServerConnection, _seen: Seen) -> None:
    """Keep the connection open, sending nothing, until the client closes it."""
    await ws.wait_closed()


def sends(*frames: str, then: Script = hold, interval: float = 0.0, after_request: bool = False) -> Script:
    """A script sending ``frames`` (``interval`` seconds apart), then going on with ``then``; with ``after_request``
    it first waits for the client's first message, its subscription, as venues do."""

    async def script(ws: ServerConnection, seen: Seen) -> None:
        if after_request:
            await seen.next_message()
        for frame in frames:
            await ws.send(frame)
            if interval:
                await asyncio.sleep(interval)
        await then(ws, seen)

    return script


def answers(ping: str, pong: str) -> Script:
    """A script answering the client's application pings, until it goes."""

    async def script(ws: ServerConnection, seen: Seen) -> None:
        while (message := await seen.next_message(timeout=60)) is not None:
            if message == ping:
                await ws.send(pong)

    return script


async def drop(ws: ServerConnection, _seen: Seen) -> None:
    """Cut the TCP connection without a close frame, as a crashed venue or a broken network does."""
    ws.transport.abort()


def send_raw(ws: ServerConnection, opcode: Opcode, payload: bytes, fin: bool = True) -> None:
    """A frame the websockets API would refuse to send (e.g. text that is not UTF-8, a message never finished)."""
    ws.transport.write(Frame(opcode, payload, fin).serialize(mask=False))


class ScriptedVenue:
    """Runs in a background thread; the last script serves every connection beyond the scripts given."""

    def __init__(self, *scripts: Script) -> None:
        self.scripts = scripts
        self.seen: list[Seen] = []
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: Server | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    async def _handler(self, ws: ServerConnection) -> None:
        seen = Seen(ws.request.path if ws.request else "")
        self.seen.append(seen)
        script = self.scripts[min(len(self.seen), len(self.scripts)) - 1]
        reader = asyncio.create_task(self._read(ws, seen))
        try:
            with contextlib.suppress(Exception):  # the client may go at any point of a script
                await script(ws, seen)
        finally:
            seen.closed = time.monotonic()
            reader.cancel()

    @staticmethod
    async def _read(ws: ServerConnection, seen: Seen) -> None:
        with contextlib.suppress(Exception):
            async for message in ws:
                text = message if isinstance(message, str) else message.decode()
                seen.messages.append(text)
                seen.queue.put_nowait(text)
        seen.queue.put_nowait(None)

    def __enter__(self) -> ScriptedVenue:
        self._thread.start()

        async def start() -> Server:
            return await serve(self._handler, "127.0.0.1", 0, max_size=None, compression=None, close_timeout=1)

        self._server = asyncio.run_coroutine_threadsafe(start(), self._loop).result(10)
        self.port = int(self._server.sockets[0].getsockname()[1])
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                asyncio.run_coroutine_threadsafe(self._server.wait_closed(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)


class LiveFeed:
    """Trades published one every ``interval`` seconds to whichever connections are subscribed at that moment,
    as a venue's live stream: what a client receives depends on when it was connected, not on a script."""

    def __init__(self, trade: Callable[[int], str], count: int, interval: float) -> None:
        self.trade = trade
        self.count = count
        self.interval = interval
        self.published = 0
        self.subscribers: set[ServerConnection] = set()
        self._task: asyncio.Task[None] | None = None

    async def subscribe(self, ws: ServerConnection) -> None:
        self.subscribers.add(ws)
        if self._task is None:
            self._task = asyncio.create_task(self._publish())

    def unsubscribe(self, ws: ServerConnection) -> None:
        self.subscribers.discard(ws)

    async def _publish(self) -> None:
        for trade_id in range(1, self.count + 1):
            frame = self.trade(trade_id)
            for ws in list(self.subscribers):
                with contextlib.suppress(Exception):
                    await ws.send(frame)
            self.published = trade_id
            await asyncio.sleep(self.interval)

    def follow(self, notice: str | None = None, after: int = 0, cut_after: float = 0.0) -> Script:
        """A connection on the feed; with ``notice``, sent once ``after`` trades are out, the venue cuts the
        connection ``cut_after`` seconds later."""

        async def script(ws: ServerConnection, seen: Seen) -> None:
            await self.subscribe(ws)
            if notice is None:
                await hold(ws, seen)
                return
            while self.published < after:
                await asyncio.sleep(0.01)
            await ws.send(notice)
            await asyncio.sleep(cut_after)
            self.unsubscribe(ws)
            await ws.close()

        return script
