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


@dataclass
class _Hole:
    first: int
    last: int
    opened: float


@dataclass
class _Sequence:
    """What is known of one symbol's ids: the highest seen and the holes below it still waiting for late trades."""

    gaps: Counter
    missing: Counter
    duplicates: Counter
    highest: int | None = None
    holes: list[_Hole] = field(default_factory=list)  # by id, ascending


class GapTracker:
    """Gaps and duplicates per symbol of one venue, kept across reconnects (one tracker per connection slot)."""

    def __init__(
        self, exchange: str, metrics: Metrics, grace: float = GRACE_SECONDS, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.exchange = exchange
        self.metrics = metrics
        self.grace = grace
        self._clock = clock
        self._lock = threading.Lock()  # the old and the new connection of a handover report at once
        self._symbols: dict[str, _Sequence] = {}

    def observe(self, symbol: str, trade_id: int) -> None:
        with self._lock:
            seq = self._symbols.get(symbol) or self._add(symbol)
            highest = seq.highest
            if highest is None or trade_id == highest + 1:
                seq.highest = trade_id
            elif trade_id > highest:
                seq.holes.append(_Hole(highest + 1, trade_id - 1, self._clock()))
                seq.highest = trade_id
                if len(seq.holes) > MAX_OPEN_HOLES:
                    self._report(symbol, seq, seq.holes.pop(0))
            elif not self._fill(seq, trade_id):
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
    def _fill(seq: _Sequence, trade_id: int) -> bool:
        """Take a late trade out of the hole it falls in; False if it falls in none (so it was seen already)."""
        for index, hole in enumerate(seq.holes):
            if hole.first <= trade_id <= hole.last:
                parts = [
                    _Hole(first, last, hole.opened)
                    for first, last in ((hole.first, trade_id - 1), (trade_id + 1, hole.last))
                    if first <= last
                ]
                seq.holes[index : index + 1] = parts
                return True
        return False

    def _expire(self, symbol: str, seq: _Sequence, now: float) -> None:
        # Holes open in id order as the highest id rises, so the first one is always the oldest.
        while seq.holes and now - seq.holes[0].opened >= self.grace:
            self._report(symbol, seq, seq.holes.pop(0))

    def _report(self, symbol: str, seq: _Sequence, hole: _Hole) -> None:
        missing = hole.last - hole.first + 1
        seq.gaps.inc()
        seq.missing.inc(missing)
        log.warning(
            "trades missing",
            extra=logs.fields(
                exchange=self.exchange,
                symbol=symbol,
                missing=missing,
                first_missing_id=hole.first,
                last_missing_id=hole.last,
            ),
        )
