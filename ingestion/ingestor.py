"""The ingestor: every configured connection's trade frames into Kafka."""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence

from core.venues import LAKE_VENUES, Exchange
from ingestion.config import Connection
from ingestion.connection import Link
from ingestion.fill import Fetch, Filler, http_get
from ingestion.forward import Forwarder, FrameSender
from ingestion.gaps import GRACE_SECONDS, GapTracker
from ingestion.metrics import Metrics

STOP_SECONDS = 5.0


class Ingestor:
    """One :class:`Link` per connection, each with its own forwarder and gap tracker, sharing the producer; one
    :class:`Filler` per venue in ``rest_urls`` (venue name -> REST base URL), shared by its connections, so that its
    requests keep under the venue's limit together."""

    def __init__(
        self,
        connections: Sequence[Connection],
        producer: FrameSender,
        metrics: Metrics,
        gap_grace: float = GRACE_SECONDS,
        rest_urls: Mapping[str, str] | None = None,
        fetch: Fetch = http_get,
    ) -> None:
        self.stop_event = threading.Event()
        self.fillers = {
            name: Filler(LAKE_VENUES[name], url, producer, metrics, self.stop_event, fetch=fetch)
            for name, url in (rest_urls or {}).items()
        }
        self.links = [
            Link(
                c.exchange,
                c.url,
                Forwarder(c.exchange, producer, metrics, self._tracker(c.exchange, metrics, gap_grace)),
                metrics,
                self.stop_event,
                c.label,
            )
            for c in connections
        ]

    def _tracker(self, exchange: Exchange, metrics: Metrics, gap_grace: float) -> GapTracker:
        filler = self.fillers.get(exchange.name)
        # Only the venue's current protocol: fills come as its frames, which an older protocol's reader would not take.
        fill = filler.offer if filler is not None and type(exchange) is filler.venue else None
        return GapTracker(exchange.name, metrics, gap_grace, fill=fill)

    def start(self) -> None:
        for filler in self.fillers.values():
            filler.start()
        for link in self.links:
            link.start()

    def stop(self) -> None:
        """Close every connection (each within about a second), and end the fills (a request under way may finish)."""
        self.stop_event.set()
        for link in self.links:
            link.join(STOP_SECONDS)
        for filler in self.fillers.values():
            filler.join(STOP_SECONDS)

    def unready(self) -> list[str]:
        return [f"not connected: {link.label}" for link in self.links if not link.connected]

    def unhealthy(self) -> list[str]:
        """What only a restart cures: connections whose thread died."""
        return [f"connection thread died: {link.label}" for link in self.links if link.died]
