"""Gap fill: trades a connection missed, fetched from the venue's public REST API and sent to Kafka as frames.

A gap tracker hands each hole still open after its grace period (late trades come in that time) to its venue's
:class:`Filler` through a bounded queue; when the queue is full the hole is counted missing at once, so the WebSocket
reading never waits on a fill. The filler's thread asks the venue's REST API for the hole's trades, paced under the
venue's documented limit, and sends them in the venue's own WebSocket frame shape with the ``filled`` header, so silver
reads them like any trade (and drops by id one that also came late over the WebSocket). What it cannot get, trades
the venue lists no more (too far back) or those of requests that failed a few times with backoff, is counted per
venue and symbol, logged once, and never asked for again.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from core import logs
from core.venues import LakeVenue, RestQuery, RestTrade
from core.venues.base import UNREADABLE
from ingestion.forward import FrameSender
from ingestion.gaps import QUEUE_FULL, GapTracker, Hole
from ingestion.metrics import Metrics

log = logging.getLogger(__name__)

MAX_QUEUED_HOLES = 1000  # holes waiting for the filler; a hole offered past this is counted missing at once
RETRIES = 3  # a failed request is tried again this many times, RETRY_SECONDS then twice as long each time
RETRY_SECONDS = 1.0
HTTP_SECONDS = 10.0
# A fill by time starts this long before the trade before the hole: the time the tracker knows is its frame's.
TIME_MARGIN_US = 2_000_000
TICK = 0.5
# Why trades of a gap stay missing: the metric's reason label, and the log's.
NOT_LISTED = "not listed"  # the venue's REST API lists them no more (too far back) or never did
FAILED = "requests failed"  # RETRIES + 1 tries of a request failed
STOPPED = "stopped"
BROKEN = "fill error"  # a bug, or an answer no parser foresaw: logged with its trace

Fetch = Callable[[str], str]  # the body of a GET of a URL; raises OSError (urllib's errors are) on failure


def http_get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=HTTP_SECONDS) as response:  # noqa: S310 - the configured venue's URL
        return str(response.read().decode())


class _GaveUpError(Exception):
    """Every try of a request failed."""


@dataclass(frozen=True)
class _Job:
    tracker: GapTracker
    symbol: str
    hole: Hole


class Filler:
    """Fills one venue's gaps from its REST API at ``base_url``, on a thread of its own, until ``stop`` is set."""

    def __init__(
        self,
        venue: type[LakeVenue],
        base_url: str,
        producer: FrameSender,
        metrics: Metrics,
        stop: threading.Event,
        *,
        fetch: Fetch = http_get,
        per_second: float | None = None,
        retry_seconds: float = RETRY_SECONDS,
        queued: int = MAX_QUEUED_HOLES,
    ) -> None:
        if venue.rest is None:
            raise ValueError(f"{venue.name} has no REST API to fill gaps from")
        self.venue = venue
        self.rest = venue.rest
        self.base_url = base_url.rstrip("/")
        self._reader = venue(())
        self._producer = producer
        self._metrics = metrics
        self._stop = stop
        self._fetch_body = fetch
        self._interval = 1 / (per_second or self.rest.per_second)
        self._retry_seconds = retry_seconds
        self._queue: queue.Queue[_Job] = queue.Queue(queued)
        self._next_request = 0.0
        self._header = venue.name.encode()
        self._requests_ok = metrics.counter("fill_requests_total", exchange=venue.name, outcome="ok")
        self._requests_failed = metrics.counter("fill_requests_total", exchange=venue.name, outcome="error")
        self._thread = threading.Thread(target=self._run, name=f"fill {venue.name}", daemon=True)

    def offer(self, tracker: GapTracker, symbol: str, hole: Hole) -> bool:
        """Queue a hole to fill; False, with the hole counted unfilled, when the queue is full (never waits)."""
        try:
            self._queue.put_nowait(_Job(tracker, symbol, hole))
        except queue.Full:
            self._unfilled(symbol, hole.last - hole.first + 1, QUEUE_FULL)
            return False
        return True

    def start(self) -> None:
        self._thread.start()

    def join(self, timeout: float) -> None:
        self._thread.join(timeout)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                job = self._queue.get(timeout=TICK)
            except queue.Empty:
                continue
            try:
                self.fill(job.tracker, job.symbol, job.hole)
            except Exception:  # a venue's odd answer must not end the fills of every later gap
                log.exception("gap fill failed", extra=logs.fields(exchange=self.venue.name, symbol=job.symbol))
                self._give_up(job.tracker, job.symbol, job.hole.first, job.hole.last, BROKEN)
        while not self._queue.empty():  # holes still waiting when the ingestor stops are counted, not lost
            job = self._queue.get_nowait()
            self._give_up(job.tracker, job.symbol, job.hole.first, job.hole.last, STOPPED)

    def fill(self, tracker: GapTracker, symbol: str, hole: Hole) -> None:
        """Fetch the hole's trades page by page and send them; report to ``tracker`` what it could not get."""
        next_id, after_us, reason = hole.first, hole.after_us - TIME_MARGIN_US, NOT_LISTED
        while next_id <= hole.last:
            if self._stop.is_set():
                reason = STOPPED
                break
            query = RestQuery(symbol, self.rest.page, from_id=next_id if self.rest.by == "id" else None,
                              after_us=after_us if self.rest.by == "time" else None)  # fmt: skip
            try:
                page = self._fetch(query)
            except _GaveUpError:
                reason = STOPPED if self._stop.is_set() else FAILED
                break
            fresh = [t for t in page if next_id <= t.trade_id <= hole.last]
            if fresh:
                self._skipped(tracker, symbol, next_id, fresh)
                self._send(symbol, fresh)
                next_id = fresh[-1].trade_id + 1
            if self.rest.by == "recent":
                break  # one look at the latest trades is all the venue offers
            if self.rest.by == "time" and page and page[-1].time_us - 1 > after_us:
                # The next page starts just before this one's last time: trades of that time may be on both.
                after_us = page[-1].time_us - 1
            elif not fresh:
                break
        if next_id <= hole.last:
            self._give_up(tracker, symbol, next_id, hole.last, reason)
        log.info(
            "gap filled" if next_id > hole.last else "gap filled in part",
            extra=logs.fields(exchange=self.venue.name, symbol=symbol, first_id=hole.first, last_id=hole.last),
        )

    def _skipped(self, tracker: GapTracker, symbol: str, next_id: int, fresh: Sequence[RestTrade]) -> None:
        """Report the ids of the hole the venue's answer passes over (before and between the trades it lists)."""
        expected = next_id
        for trade in fresh:
            if trade.trade_id > expected:
                self._give_up(tracker, symbol, expected, trade.trade_id - 1, NOT_LISTED)
            expected = trade.trade_id + 1

    def _send(self, symbol: str, trades: Sequence[RestTrade]) -> None:
        key = self._reader.kafka_key(symbol)
        received_at_us = time.time_ns() // 1000
        for frame in self.venue.filled_frames(symbol, trades):
            self._producer.send(self._header, key, frame.encode(), received_at_us, filled=True)
        self._metrics.counter("filled_trades_total", exchange=self.venue.name, symbol=symbol).inc(len(trades))

    def _fetch(self, query: RestQuery) -> list[RestTrade]:
        url = self.base_url + self.venue.rest_request(query)
        problem = ""
        for attempt in range(RETRIES + 1):
            if attempt and self._stop.wait(self._retry_seconds * 2 ** (attempt - 1)):
                break
            self._pace()
            try:
                trades = self.venue.rest_trades(self._fetch_body(url))
            except (OSError, *UNREADABLE) as exc:  # HTTP and network errors, the venue's errors, unreadable answers
                self._requests_failed.inc()
                problem = f"{type(exc).__name__}: {exc}"
                continue
            self._requests_ok.inc()
            return trades
        log.warning(
            "gap fill request failed, given up",
            extra=logs.fields(exchange=self.venue.name, url=url, tries=RETRIES + 1, last_error=problem),
        )
        raise _GaveUpError(problem)

    def _pace(self) -> None:
        """Wait until the venue's limit allows the next request: requests at least an interval apart, never bunched
        to catch up on a wait that overslept."""
        wait = self._next_request - time.monotonic()
        if wait > 0:
            self._stop.wait(wait)
        self._next_request = time.monotonic() + self._interval

    def _give_up(self, tracker: GapTracker, symbol: str, first: int, last: int, reason: str) -> None:
        self._unfilled(symbol, last - first + 1, reason)
        tracker.report(symbol, first, last, reason)

    def _unfilled(self, symbol: str, count: int, reason: str) -> None:
        self._metrics.counter("unfilled_trades_total", exchange=self.venue.name, symbol=symbol, reason=reason).inc(
            count
        )
