"""What the ingestor needs to know of a venue, as one small class per venue."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from enum import Enum


class FrameKind(Enum):
    """What a received frame is; only trades go to Kafka, the rest only feeds metrics and logs."""

    TRADE = "trade"
    CONTROL = "control"  # acks, heartbeats, pongs, status
    ERROR = "error"


class Exchange(ABC):
    """A venue's WebSocket trade feed: where to connect, what to send, how to read what comes back."""

    name: str

    def __init__(self, symbols: Sequence[str]) -> None:
        """``symbols`` in canonical ``BASE-QUOTE`` form, e.g. ``BTC-USDT``."""
        self.symbols = tuple(symbols)
        self._canonical = {self.venue_symbol(s): s for s in self.symbols}

    @abstractmethod
    def url(self, base_url: str) -> str:
        """The WebSocket URL to open for ``self.symbols`` under the venue's ``base_url``."""

    def subscribe_messages(self) -> list[str]:
        """Text frames to send once connected; none for venues that subscribe through the URL."""
        return []

    @staticmethod
    @abstractmethod
    def venue_symbol(canonical: str) -> str:
        """The venue's spelling of a canonical symbol."""

    @abstractmethod
    def classify(self, frame: str) -> tuple[FrameKind, str | None]:
        """The frame's kind and, for trades, the canonical symbol it is keyed by."""

    def canonical(self, venue_symbol: str) -> str:
        """Canonical form of a symbol the venue sent; unknown ones pass through upper-cased."""
        return self._canonical.get(venue_symbol, venue_symbol.upper())

    def kafka_key(self, symbol: str) -> bytes:
        return f"{self.name}:{symbol}".encode()
