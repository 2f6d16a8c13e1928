"""What the dashboard serves, refreshed from the lake and the layers' progress by whoever runs the pipeline's loop.

The HTTP threads only read the latest snapshots (a reference swap), so the lake is read once per refresh however
many pages are open.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from core.layers import BAR_INTERVALS, QUARANTINE_TABLE
from core.settings import Settings
from cryptolake import lake
from cryptolake.dashboard import bars
from cryptolake.status import Progress

BARS_SECONDS = 30.0  # bars are read again at least this often, and whenever gold has written some
COUNTS_SECONDS = 30.0  # the quarantine count replays its table's log (no data file read): cheap, but not every poll


def health(
    progress: Progress, frames: int | None, counts: dict[str, int | None], gold_bar_end: float | None, now: float
) -> dict[str, Any]:
    """The pipeline's health as the page shows it: per layer its rows (gold: bars) and rate in this run, or what it
    waits for; how fresh silver and gold are; the lake's quarantine count."""
    layers = []
    for name, layer in progress.layers.items():
        state = "running" if layer.batches else f"waiting for {layer.waiting_for}" if layer.waiting_for else "starting"
        layers.append({"name": name, "state": state, "rows": layer.rows, "per_s": round(layer.rate(now), 1)})
    silver = progress.layers["silver"].wrote_at
    return {
        "now": now,
        "frames": frames,
        "layers": layers,
        "silver_wrote_s": None if silver is None else round(now - silver),
        "gold_bar_closed_s": None if gold_bar_end is None else round(now - gold_bar_end),
        **counts,
    }


def complete_bar_end(bars: pa.Table) -> float | None:
    """When the newest complete bar of ``bars`` ended, in seconds since the epoch: gold holds forming bars too."""
    if bars.num_rows == 0:
        return None
    end: datetime | None = pc.max(bars.filter(bars["complete"])["bar_end"]).as_py()
    return None if end is None else end.replace(tzinfo=end.tzinfo or UTC).timestamp()  # the lake's times are UTC


class LakeView:
    """The latest bars of every interval, and the health, as JSON-ready dicts."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.bars: dict[str, dict[str, Any]] = {i: {"interval": i, "series": [], "spreads": []} for i in BAR_INTERVALS}
        self.health: dict[str, Any] = {}
        self.error: str | None = None
        self._counts: dict[str, int | None] = {"quarantined": None}
        self._gold_bar_end: float | None = None
        self._bars_read: tuple[float, int] | None = None  # when, and gold's bar count then
        self._counts_read: float | None = None

    def refresh(self, progress: Progress, frames: int | None, now: float) -> None:
        gold_rows = progress.layers["gold"].rows
        try:
            if self._bars_read is None or self._bars_read[1] != gold_rows or now - self._bars_read[0] > BARS_SECONDS:
                self._read_bars()
                self._bars_read = (now, gold_rows)
            if self._counts_read is None or now - self._counts_read > COUNTS_SECONDS:
                self._read_counts()
                self._counts_read = now
            self.error = None
        except lake.READ_ERRORS as exc:
            self.error = f"the lake at {self.settings.s3_endpoint} is not readable: {exc}"
        self.health = {**health(progress, frames, self._counts, self._gold_bar_end, now), "error": self.error}

    def _read_bars(self) -> None:
        for interval in BAR_INTERVALS:
            newest = lake.read_newest_bars(self.settings, interval, count=bars.MAX_BARS)
            candles = bars.series(newest.to_pylist())
            self.bars[interval] = {"interval": interval, "series": candles, "spreads": bars.spreads(candles)}
            if interval == "1m":
                self._gold_bar_end = complete_bar_end(newest) or self._gold_bar_end

    def _read_counts(self) -> None:
        self._counts = {"quarantined": lake.count_rows(self.settings, QUARANTINE_TABLE)}
