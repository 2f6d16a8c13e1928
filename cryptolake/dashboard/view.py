"""What the dashboard serves, refreshed from the lake and the layers' progress by whoever runs the pipeline's loop.

The HTTP threads only read the latest snapshots (a reference swap), so the lake is read once per refresh however
many pages are open.
"""

from __future__ import annotations

from typing import Any

from core.layers import BAR_INTERVALS, QUARANTINE_TABLE
from core.settings import Settings, duration_seconds
from cryptolake import lake
from cryptolake.dashboard import bars
from cryptolake.status import Progress

BARS_SECONDS = 30.0  # bars are read again at least this often, and whenever gold has written some
COUNTS_SECONDS = 60.0  # quarantine and late counts read the whole of silver: not more often than this


def health(
    progress: Progress, frames: int | None, counts: dict[str, int | None], gold_bar_end: float | None, now: float
) -> dict[str, Any]:
    """The pipeline's health as the page shows it: per layer its rows (gold: bars) and rate in this run, or what it
    waits for; how fresh silver and gold are; the lake's quarantine and late counts."""
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


class LakeView:
    """The latest bars of every interval, and the health, as JSON-ready dicts."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.bars: dict[str, dict[str, Any]] = {i: {"interval": i, "series": [], "spreads": []} for i in BAR_INTERVALS}
        self.health: dict[str, Any] = {}
        self.error: str | None = None
        self._counts: dict[str, int | None] = {"quarantined": None, "late": None}
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
        except OSError as exc:
            self.error = f"the lake at {self.settings.s3_endpoint} is not readable: {exc}"
        self.health = {**health(progress, frames, self._counts, self._gold_bar_end, now), "error": self.error}

    def _read_bars(self) -> None:
        for interval in BAR_INTERVALS:
            candles = bars.series(lake.read_bars(self.settings, interval=interval).to_pylist())
            self.bars[interval] = {"interval": interval, "series": candles, "spreads": bars.spreads(candles)}
        newest = [s["bars"][-1]["time"] for s in self.bars["1m"]["series"]]
        if newest:
            self._gold_bar_end = max(newest) + duration_seconds(BAR_INTERVALS["1m"])

    def _read_counts(self) -> None:
        self._counts = {
            "quarantined": lake.read_table(self.settings, QUARANTINE_TABLE).num_rows,
            "late": lake.read_late_trades(self.settings, "1m").num_rows,
        }
