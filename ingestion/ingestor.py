"""The ingestor: every configured connection's trade frames into Kafka."""

from __future__ import annotations

import threading
from collections.abc import Sequence

from ingestion.config import Connection
from ingestion.connection import Link
from ingestion.forward import Forwarder, FrameSender
from ingestion.gaps import GRACE_SECONDS, GapTracker
from ingestion.metrics import Metrics

STOP_SECONDS = 5.0


class Ingestor:
    """One :class:`Link` per connection, each with its own forwarder and gap tracker, sharing the producer."""

    def __init__(
        self,
        connections: Sequence[Connection],
        producer: FrameSender,
        metrics: Metrics,
        gap_grace: float = GRACE_SECONDS,
    ) -> None:
        self.stop_event = threading.Event()
        self.links = [
            Link(
                c.exchange,
                c.url,
                Forwarder(c.exchange, producer, metrics, GapTracker(c.exchange.name, metrics, gap_grace)),
                metrics,
                self.stop_event,
                c.label,
            )
            for c in connections
        ]

    def start(self) -> None:
        for link in self.links:
            link.start()

    def stop(self) -> None:
        """Close every connection (each within about a second)."""
        self.stop_event.set()
        for link in self.links:
            link.join(STOP_SECONDS)

    def unready(self) -> list[str]:
        return [f"not connected: {link.label}" for link in self.links if not link.connected]

    def unhealthy(self) -> list[str]:
        """What only a restart cures: connections whose thread died."""
        return [f"connection thread died: {link.label}" for link in self.links if link.died]
