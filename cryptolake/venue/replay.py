"""``cryptolake replay``: recordings served by the local venue, the real ingestor reading them into Kafka."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from core.settings import Settings
from core.venues import Exchange
from cryptolake.local.procs import LOOPBACK, free_port
from cryptolake.venue import recordings
from cryptolake.venue.server import LocalVenue, VenueThread, recorded_sequences
from ingestion.config import SYMBOL_SETTINGS
from ingestion.metrics import metric_total

POLL_SECONDS = 0.5


def ingestor_settings(settings: Settings, loaded: Sequence[recordings.Recording], venue_url: str) -> Settings:
    """``settings`` with the venues and symbols of the recordings, every venue at ``venue_url``."""
    served: dict[type[Exchange], dict[str, None]] = {}
    for recording in loaded:
        served.setdefault(recording.feed, {}).update(dict.fromkeys(recording.symbols))
    run = served_settings(settings, served, venue_url)
    return run.with_(ingestor_http_port=free_port(), ingestor_http_host=LOOPBACK)


def served_settings(settings: Settings, served: Mapping[type[Exchange], Iterable[str]], venue_url: str) -> Settings:
    """``settings`` with the ingestor reading these feeds' symbols, every feed at ``venue_url``."""
    symbols: dict[str, dict[str, None]] = {}
    for feed, names in served.items():
        symbols.setdefault(SYMBOL_SETTINGS[feed.name], {}).update(dict.fromkeys(names))
    changes: dict[str, Any] = {name: tuple(found) for name, found in symbols.items()}
    return settings.with_(venues=tuple(feed.feed for feed in served), venue_url=venue_url, **changes)


def replay(settings: Settings, paths: Sequence[Path], speed: float, idle_timeout: float = 60.0) -> int:
    """Replay ``paths`` into ``settings.kafka_topic``; 0 once Kafka has acknowledged every trade frame in them."""
    loaded = [recordings.load(path) for path in paths]
    expected = sum(r.trade_frames for r in loaded)
    for recording in loaded:
        print(
            f"{recording.path.name}: {recording.feed.feed}, {recording.trade_frames} trade frames, "
            f"symbols {','.join(recording.symbols)}"
        )
    venue = VenueThread(LocalVenue(recorded_sequences(loaded, speed)))
    port = venue.start()
    run = ingestor_settings(settings, loaded, f"ws://127.0.0.1:{port}")
    ingestor = subprocess.Popen([sys.executable, "-m", "ingestion"], env={**os.environ, **run.to_env()})
    try:
        delivered = _wait_for(ingestor, run.ingestor_http_port, expected, idle_timeout)
    finally:
        ingestor.send_signal(signal.SIGTERM)
        code = ingestor.wait(run.ingestor_flush_seconds + 30)
        venue.stop()
    if delivered < expected:
        print(f"error: Kafka acknowledged {delivered:,} of {expected:,} trade frames", file=sys.stderr)
        return 1
    print(f"replayed {expected:,} trade frames into {settings.kafka_topic} at {settings.kafka_bootstrap}")
    return code


def _wait_for(ingestor: subprocess.Popen[bytes], port: int, expected: int, idle_timeout: float) -> int:
    """Kafka's acknowledged count once it reaches ``expected``, or stops growing for ``idle_timeout`` seconds."""
    delivered, changed = 0, time.monotonic()
    while delivered < expected and ingestor.poll() is None and time.monotonic() - changed < idle_timeout:
        time.sleep(POLL_SECONDS)
        now = int(metric_total(port, "delivered_total"))
        if now != delivered:
            delivered, changed = now, time.monotonic()
    return delivered
