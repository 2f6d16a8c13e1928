"""Missing and repeated trades, where a venue numbers its trades one by one per symbol."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from prometheus_client import Counter

from core import logs
from ingestion.metrics import Metrics

log = logging.getLogger(__name__)

# A hole stays open this long before it counts as a gap: venues such as Coinbase deliver ids slightly out of order.
GRACE_SECONDS = 5.0
# Open holes kept per symbol; past this the oldest is counted at once (memory stays bounded on a broken feed).
MAX_OPEN_HOLES = 1000
QUEUE_FULL = "queue full"  # why a hole was counted at once: its venue's fill queue had no room


@dataclass
class Hole:
    """Ids not seen yet below the highest seen."""

    first: int
    last: int
    opened: float
    after_us: int  # about when the trade before it was made: where a venue that pages by time starts looking


@dataclass
class _Sequence:
    """What is known of one symbol's ids: the highest seen and the holes below it still waiting for late trades."""

    gaps: Counter
    missing: Counter
    duplicates: Counter
    highest: int | None = None
    highest_us: int = 0
    holes: list[Hole] = field(default_factory=list)  # by id, ascending


# Takes a hole that has waited out the grace period (a symbol's), to fill it: False if it cannot take it now.
FillHole = Callable[["GapTracker", str, Hole], bool]


class GapTracker:
    """Gaps and duplicates per symbol of one venue, kept across reconnects (one tracker per connection slot).

    A hole still open after the grace period goes to ``fill`` where the venue's gaps are filled (which reports what it
    could not get), else it is counted missing at once."""

    def __init__(
        self,
        exchange: str,
        metrics: Metrics,
        grace: float = GRACE_SECONDS,
        clock: Callable[[], float] = time.monotonic,
        fill: FillHole | None = None,
    ) -> None:
        self.exchange = exchange
        self.metrics = metrics
        self.grace = grace
        self.fill = fill
        self._clock = clock
        self._lock = threading.Lock()  # the old and the new connection of a handover report at once
        self._symbols: dict[str, _Sequence] = {}

    def observe(self, symbol: str, trade_id: int, at_us: int = 0) -> None:
        """A trade id seen, ``at_us`` about when the trade was made (us since the epoch)."""
        with self._lock:
            seq = self._symbols.get(symbol) or self._add(symbol)
            highest = seq.highest
            if highest is None or trade_id == highest + 1:
                seq.highest, seq.highest_us = trade_id, at_us
            elif trade_id > highest:
                seq.holes.append(Hole(highest + 1, trade_id - 1, self._clock(), seq.highest_us))
                seq.highest, seq.highest_us = trade_id, at_us
                if len(seq.holes) > MAX_OPEN_HOLES:
                    self._close(symbol, seq, seq.holes.pop(0))
            elif not self._take_late(seq, trade_id):
                seq.duplicates.inc()
            if seq.holes:
                self._expire(symbol, seq, self._clock())

    def sweep(self) -> None:
        """Count the holes that have waited out the grace period; call this now and then, also when idle."""
        now = self._clock()
        with self._lock:
            for symbol, seq in self._symbols.items():
                self._expire(symbol, seq, now)

    def _add(self, symbol: str) -> _Sequence:
        labels = {"exchange": self.exchange, "symbol": symbol}
        seq = _Sequence(
            gaps=self.metrics.counter("gaps_total", **labels),
            missing=self.metrics.counter("missing_trades_total", **labels),
            duplicates=self.metrics.counter("duplicate_trades_total", **labels),
        )
        self._symbols[symbol] = seq
        return seq

    @staticmethod
    def _take_late(seq: _Sequence, trade_id: int) -> bool:
        """Take a late trade out of the hole it falls in; False if it falls in none (so it was seen already)."""
        for index, hole in enumerate(seq.holes):
            if hole.first <= trade_id <= hole.last:
                parts = [
                    Hole(first, last, hole.opened, hole.after_us)
                    for first, last in ((hole.first, trade_id - 1), (trade_id + 1, hole.last))
                    if first <= last
                ]
                seq.holes[index : index + 1] = parts
                return True
        return False

    def _expire(self, symbol: str, seq: _Sequence, now: float) -> None:
        # Holes open in id order as the highest id rises, so the first one is always the oldest.
        while seq.holes and now - seq.holes[0].opened >= self.grace:
            self._close(symbol, seq, seq.holes.pop(0))

    def _close(self, symbol: str, seq: _Sequence, hole: Hole) -> None:
        if self.fill is None:
            self._report(seq, symbol, hole.first, hole.last, "")
        elif not self.fill(self, symbol, hole):
            self._report(seq, symbol, hole.first, hole.last, QUEUE_FULL)

    def report(self, symbol: str, first: int, last: int, reason: str) -> None:
        """Count ids ``first`` to ``last`` missing for good (e.g. the fill could not get them), and say why."""
        with self._lock:
            self._report(self._symbols.get(symbol) or self._add(symbol), symbol, first, last, reason)

    def _report(self, seq: _Sequence, symbol: str, first: int, last: int, reason: str) -> None:
        missing = last - first + 1
        seq.gaps.inc()
        seq.missing.inc(missing)
        log.warning(
            "trades missing",
            extra=logs.fields(
                exchange=self.exchange,
                symbol=symbol,
                missing=missing,
                first_missing_id=first,
                last_missing_id=last,
                **({"unfilled_because": reason} if reason else {}),
            ),
        )
