"""WebSocket connections to a venue that survive weeks: pings, a silence watchdog, reconnects and handovers.

A :class:`Session` is one WebSocket connection, read on its own thread. A :class:`Link` keeps one group of a venue's
symbols connected: it reopens lost sessions with capped, jittered exponential backoff, and when a venue is about to
cut a session (age limit, shutdown notice) it opens the replacement first and closes the old one only once the new
one is up, so that no trade falls between the two. The overlap's duplicates are counted, and silver drops them.
"""

from __future__ import annotations

import contextlib
import logging
import random
import threading
import time
from typing import Protocol

import websocket
from prometheus_client import Counter

from core import events, logs
from core.throttle import Throttle
from core.venues import Exchange, FrameKind, Parsed
from core.venues.base import UNREADABLE, error
from ingestion.metrics import Metrics
from ingestion.producer import MAX_FRAME_BYTES

log = logging.getLogger(__name__)

TICK = 0.5  # seconds between housekeeping checks, and the socket read timeout that guarantees them
CONNECT_SECONDS = 10.0
CLOSE_SECONDS = 2.0
STABLE_SECONDS = 10.0  # a session that lasted this long was healthy: the next reconnect starts the backoff anew
OVERLAP_SECONDS = 5.0  # in a handover, the old session closes this long after the new one is up (or its first trade)
LOG_EXCERPT = 200

TEXT = websocket.ABNF.OPCODE_TEXT
BINARY = websocket.ABNF.OPCODE_BINARY
CLOSE = websocket.ABNF.OPCODE_CLOSE
CONT = websocket.ABNF.OPCODE_CONT
# Not opcodes: a frame over the limit, refused unread; a fragment of a message still coming.
REFUSED, FRAGMENT = -1, -2
DISCARD_BYTES = 1 << 16  # a refused frame is read past in pieces of this size


class Sink(Protocol):
    """Where a session's frames go: Kafka for the ingestor, a file for the recorder."""

    def sent(self, text: str) -> None:
        """A subscribe request the session sent."""

    def received(self, frame: bytes, parsed: Parsed, received_at_us: int) -> None:
        """A text frame, as received, with what it is."""

    def tick(self) -> None:
        """Called every TICK or so, also while no frame arrives."""


class Backoff:
    """Capped exponential backoff with full jitter, so many ingestors do not reconnect in step."""

    def __init__(self, initial: float = 0.5, cap: float = 30.0, rng: random.Random | None = None) -> None:
        self.initial, self.cap, self.attempt = initial, cap, 0
        self._rng = rng or random.Random()  # a seeded one makes the delays known in advance (tests)

    def next(self) -> float:
        ceiling = min(self.cap, self.initial * 2**self.attempt)
        if ceiling < self.cap:
            # Once capped, the count stops: 2**attempt as a float overflows after about a thousand attempts.
            self.attempt += 1
        return self._rng.uniform(0, ceiling)

    def reset(self) -> None:
        self.attempt = 0


class SessionEndError(Exception):
    """The session ends for a reason of its own: silence, the venue's close frame."""


class VenueMetrics:
    """The series a venue's sessions update."""

    def __init__(self, metrics: Metrics, exchange: str) -> None:
        self._metrics = metrics
        self.exchange = exchange
        self.control = metrics.counter("control_frames_total", exchange=exchange)
        self.rejections = metrics.counter("subscription_rejections_total", exchange=exchange)
        self.reconnects = metrics.counter("reconnects_total", exchange=exchange)
        self.handovers = metrics.counter("handovers_total", exchange=exchange)
        self.connections = metrics.gauge("connections", exchange=exchange)

    def errors(self, reason: str) -> Counter:
        return self._metrics.counter("error_frames_total", exchange=self.exchange, reason=reason)


class Session:
    """One WebSocket connection: subscribe, then read frames into the sink until closed, cut or silent."""

    def __init__(
        self, exchange: Exchange, url: str, sink: Sink, metrics: VenueMetrics, wake: threading.Event, label: str
    ) -> None:
        self.exchange = exchange
        self.url = url
        self.sink = sink
        self.metrics = metrics
        self.label = label
        self.connected_at: float | None = None  # monotonic time the subscriptions went out
        self.got_trade = False
        self.handover: str | None = None  # why this session should be replaced, once the venue says so
        self.ended: str | None = None  # why it ended, once it has
        self._wake = wake
        self._closing = threading.Event()
        self._last_ping = 0.0
        self._throttle = Throttle(10.0)
        self._discarding = 0  # bytes of a refused frame still to read past
        self._message_cut = False  # the refused frame was part of a message in fragments
        self._message: tuple[int, list[bytes]] = (0, [])  # the opcode and fragments of a message still coming
        self._thread = threading.Thread(target=self._run, name=label, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def close(self) -> None:
        """Ask the session to close; it does within TICK."""
        self._closing.set()

    def join(self, timeout: float) -> None:
        self._thread.join(timeout)

    def _run(self) -> None:
        reason = "closed"
        try:
            self._serve()
        except SessionEndError as exc:
            reason = str(exc)
        except (websocket.WebSocketException, OSError) as exc:
            reason = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        except Exception as exc:  # a venue must never take the ingestor down; the link reconnects
            log.exception("connection failed unexpectedly", extra=logs.fields(connection=self.label))
            reason = f"{type(exc).__name__}: {exc}"
        finally:
            if self.connected_at is not None:
                self.metrics.connections.inc(-1)
            self.ended = reason
            self._wake.set()

    def _serve(self) -> None:
        # Fragments come one by one, so that a message is measured before each is read (``_refused``).
        ws = websocket.create_connection(
            self.url, timeout=CONNECT_SECONDS, skip_utf8_validation=True, fire_cont_frame=True
        )
        try:
            for message in self.exchange.subscribe_messages():
                ws.send(message)
                self.sink.sent(message)
            ws.settimeout(TICK)
            now = self.connected_at = self._last_ping = time.monotonic()
            self.metrics.connections.inc()
            self._wake.set()
            log.info(events.CONNECTED, extra=logs.fields(connection=self.label, url=self.url))
            last_frame = now
            next_tick = now + TICK
            while not self._closing.is_set():
                try:
                    opcode, data = (REFUSED, b"") if self._refused(ws) else self._next(ws)
                except websocket.WebSocketTimeoutException:
                    opcode = 0
                now = time.monotonic()
                if opcode == TEXT:
                    last_frame = now
                    self._on_text(data)
                elif opcode:
                    # Pings (websocket-client answers them, same payload), pongs and refused frames count.
                    last_frame = now
                    if opcode == CLOSE:
                        raise SessionEndError(f"closed by the venue: {_close_reason(data)}")
                    if opcode == BINARY:
                        self._not_forwarded("binary", f"{len(data)} bytes", data)
                if now >= next_tick:
                    next_tick = now + TICK
                    self._housekeeping(ws, now, last_frame)
        finally:
            with contextlib.suppress(websocket.WebSocketException, OSError):
                ws.close(timeout=CLOSE_SECONDS)

    def _on_text(self, data: bytes) -> None:
        received_at_us = time.time_ns() // 1000
        try:
            text = data.decode()
        except UnicodeDecodeError:
            self._not_forwarded("malformed", "not UTF-8", data)
            return
        reason = "venue_error"
        try:
            parsed = self.exchange.parse(text)
        except UNREADABLE as exc:
            parsed, reason = error(f"unreadable: {type(exc).__name__}: {exc}"), "malformed"
        self.sink.received(data, parsed, received_at_us)
        kind = parsed.kind
        if kind is FrameKind.TRADE:
            if not self.got_trade:
                self.got_trade = True
                self._wake.set()
        elif kind is FrameKind.CONTROL:
            self.metrics.control.inc()
        elif kind is FrameKind.REJECTED:
            self.metrics.rejections.inc()
            log.error(
                "the venue rejected a subscription: check the symbols configured for it",
                extra=logs.fields(connection=self.label, venue_says=parsed.detail),
            )
        elif kind is FrameKind.RECONNECT:
            log.warning(
                "the venue will close this connection: opening a replacement first",
                extra=logs.fields(connection=self.label, venue_says=parsed.detail),
            )
            self.handover = parsed.detail
            self._wake.set()
        else:
            self._not_forwarded(reason, parsed.detail or "", data)

    def _next(self, ws: websocket.WebSocket) -> tuple[int, bytes]:
        """The next control frame or whole message; a message's fragments but its last count as a frame of their own
        (``FRAGMENT``) until it is whole."""
        opcode, frame = ws.recv_data_frame(control_frame=True)
        if opcode not in (TEXT, BINARY, CONT):
            return opcode, frame.data
        first, parts = self._message if opcode == CONT else (opcode, [])
        parts.append(frame.data)
        if not frame.fin:
            self._message = (first, parts)
            return FRAGMENT, b""
        self._message = (0, [])
        return first, b"".join(parts)

    def _refused(self, ws: websocket.WebSocket) -> bool:
        """Whether the next frame is one over Kafka's limit (with the fragments before it, for a message in
        fragments), read past without keeping it: the library's own frame reader takes the header and length here,
        and ``_next`` goes on from them for any other frame.

        A timeout may cut the reading anywhere; the frame reader and ``_discarding`` keep where it was.
        """
        frames = ws.frame_buffer
        if not self._discarding:
            if frames.needs_header():
                frames.recv_header()
            if frames.needs_length():
                frames.recv_length()
            if frames.needs_mask():
                frames.recv_mask()
            fin, _, _, _, opcode, _, _ = frames.header or (True, 0, 0, 0, 0, 0, 0)
            length = frames.length or 0
            # A message's fragments before this one (together under the limit) are all that is held of it.
            earlier = sum(map(len, self._message[1])) if opcode == CONT else 0
            if earlier + length <= MAX_FRAME_BYTES:
                return False
            self._not_forwarded("oversized", f"{earlier + length} bytes, more than Kafka takes, not read", b"")
            self._discarding = length
            self._message_cut = opcode == CONT or not fin
        while self._discarding:
            self._discarding -= len(frames.recv_strict(min(DISCARD_BYTES, self._discarding)))
        frames.clear()
        if self._message_cut:
            # The rest of a message cut short cannot be read alone: a new connection starts clean.
            raise SessionEndError("a message in fragments over Kafka's limit")
        return True

    def _not_forwarded(self, reason: str, detail: str, data: bytes) -> None:
        self.metrics.errors(reason).inc()
        held = self._throttle.allow(reason)
        if held is not None:
            log.warning(
                "frame not forwarded",
                extra=logs.fields(
                    connection=self.label,
                    reason=reason,
                    detail=detail,
                    frame=data[:LOG_EXCERPT].decode(errors="replace"),
                    similar_held_back=held,
                ),
            )

    def _housekeeping(self, ws: websocket.WebSocket, now: float, last_frame: float) -> None:
        timing = self.exchange.timing
        if now - last_frame > timing.silence:
            raise SessionEndError(f"silent for {timing.silence:g} s")
        ping = self.exchange.ping_text
        if timing.ping_every is not None and ping is not None:
            since = max(self._last_ping, last_frame) if timing.ping_when_idle else self._last_ping
            if now - since >= timing.ping_every:
                ws.send(ping)
                self._last_ping = now
        connected_at = self.connected_at or now
        if timing.max_age is not None and self.handover is None and now - connected_at >= timing.max_age:
            self.handover = f"connection {timing.max_age:g} s old, the venue's limit is near"
            log.info("replacing an old connection", extra=logs.fields(connection=self.label))
            self._wake.set()
        self.sink.tick()


def _close_reason(data: bytes) -> str:
    if len(data) < 2:
        return "no status"
    return f"{int.from_bytes(data[:2], 'big')} {data[2:].decode(errors='replace')}".strip()


class Link:
    """Keeps one group of a venue's symbols connected until ``stop`` is set."""

    def __init__(
        self, exchange: Exchange, url: str, sink: Sink, metrics: Metrics, stop: threading.Event, label: str
    ) -> None:
        self.exchange = exchange
        self.url = url
        self.sink = sink
        self.metrics = VenueMetrics(metrics, exchange.name)
        self.label = label
        self._stop = stop
        self._wake = threading.Event()
        self._backoff = Backoff()
        self._current: Session | None = None
        self._opened = 0
        self._thread = threading.Thread(target=self._run_logged, name=f"link {label}", daemon=True)

    @property
    def connected(self) -> bool:
        session = self._current
        return session is not None and session.connected_at is not None and session.ended is None

    @property
    def died(self) -> bool:
        """Whether the link's thread ended before it was asked to stop: nothing reconnects it then."""
        return self._thread.ident is not None and not self._thread.is_alive() and not self._stop.is_set()

    def start(self) -> None:
        self._thread.start()

    def join(self, timeout: float) -> None:
        self._thread.join(timeout)

    def _open(self) -> Session:
        self._opened += 1
        session = Session(self.exchange, self.url, self.sink, self.metrics, self._wake, f"{self.label}#{self._opened}")
        session.start()
        return session

    def _run_logged(self) -> None:
        try:
            self.run()
        except Exception:
            log.exception(
                "connection thread died: nothing reconnects it, so /healthz fails and the process is restarted",
                extra=logs.fields(connection=self.label),
            )

    def run(self) -> None:
        current = self._current = self._open()
        successor: Session | None = None
        retry_handover_at = 0.0
        try:
            while not self._stop.is_set():
                self._wake.wait(TICK)
                self._wake.clear()
                now = time.monotonic()
                if successor is not None:
                    if successor.ended is not None:
                        log.warning(
                            "replacement connection failed, keeping the old one",
                            extra=logs.fields(connection=successor.label, reason=successor.ended),
                        )
                        successor = None
                        retry_handover_at = now + self._backoff.next()
                    elif successor.got_trade or (
                        successor.connected_at is not None and now - successor.connected_at >= OVERLAP_SECONDS
                    ):
                        current.close()
                        current = self._current = self._handed_over(current, successor)
                        successor = None
                if current.ended is not None:
                    if successor is not None:  # the venue cut the old one first; the new one carries on
                        current = self._current = self._handed_over(current, successor)
                        successor = None
                        continue
                    if not self._wait_to_reconnect(current):
                        break
                    current = self._current = self._open()
                elif current.handover is not None and successor is None and now >= retry_handover_at:
                    log.info(
                        "opening a replacement connection",
                        extra=logs.fields(connection=current.label, reason=current.handover),
                    )
                    successor = self._open()
        finally:
            sessions = [s for s in (current, successor) if s is not None]
            for session in sessions:
                session.close()
            for session in sessions:
                session.join(TICK + CLOSE_SECONDS)

    def _handed_over(self, old: Session, new: Session) -> Session:
        self.metrics.handovers.inc()
        self._backoff.reset()
        log.info("handed over to the new connection", extra=logs.fields(old=old.label, new=new.label))
        return new

    def _wait_to_reconnect(self, lost: Session) -> bool:
        """Count and log the loss, wait the backoff; False if stopped meanwhile."""
        if lost.connected_at is not None and time.monotonic() - lost.connected_at >= STABLE_SECONDS:
            self._backoff.reset()
        delay = self._backoff.next()
        self.metrics.reconnects.inc()
        log.warning(
            events.CONNECTION_LOST,
            extra=logs.fields(connection=lost.label, reason=lost.ended, retry_in_s=round(delay, 2)),
        )
        return not self._stop.wait(delay)
