"""Rate limits for log lines that a misbehaving venue could otherwise repeat thousands of times a second."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


class Throttle:
    """One line per key every ``interval`` seconds; counts the lines it held back in between."""

    def __init__(self, interval: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.interval = interval
        self._clock = clock
        self._lock = threading.Lock()
        self._next: dict[str, float] = {}
        self._held: dict[str, int] = {}

    def allow(self, key: str) -> int | None:
        """None to hold the line back; else how many lines of ``key`` were held back since the last one let through."""
        now = self._clock()
        with self._lock:
            if now < self._next.get(key, now):
                self._held[key] = self._held.get(key, 0) + 1
                return None
            self._next[key] = now + self.interval
            return self._held.pop(key, 0)
