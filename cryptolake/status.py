"""What ``cryptolake up`` shows every few seconds, from the JSON lines its children log and the gold tables.

Per layer: the rows it wrote in this run and at what rate (gold: bars), or that Spark is still starting; the
freshest gold bar of each symbol, its prices at the symbol's own precision; and a warning for a venue the ingestor
has not reached for a while, with the reason it gives.
"""

from __future__ import annotations

import json
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

import pyarrow as pa

from core import events
from core.layers import BRONZE_TABLE, LAYERS, SILVER_TABLE

RATE_SECONDS = 60.0  # a layer's rate is over the batches of this last minute
UNREACHABLE_SECONDS = 30.0  # a venue not reached for this long gets a warning line
RECENT_BARS = 500  # the newest bars, where each symbol's freshest bar and precision are looked for
INDENT = " " * 9  # under the time the first line starts with
READERS = {BRONZE_TABLE: "silver", SILVER_TABLE: "gold"}  # the layer that waits for a table's first commit


def _epoch(ts: str) -> float:
    return datetime.fromisoformat(ts).timestamp()


@dataclass
class LayerProgress:
    """A layer's batches of this run: rows written (gold: bars), and when, for its rate."""

    rows: int = 0
    batches: int = 0
    started_at: float | None = None  # its first query's start in this run
    wrote_at: float | None = None  # its newest batch that wrote rows
    waiting_for: str | None = None  # the table it waits for before it can start
    recent: deque[tuple[float, int]] = field(default_factory=deque)

    def add(self, at: float, rows: int) -> None:
        self.rows += rows
        self.batches += 1
        self.recent.append((at, rows))
        if rows:
            self.wrote_at = at

    def rate(self, now: float) -> float:
        """Rows per second over the last RATE_SECONDS, or since the layer started if that is later."""
        while self.recent and self.recent[0][0] < now - RATE_SECONDS:
            self.recent.popleft()
        since = max(now - RATE_SECONDS, self.started_at or now - RATE_SECONDS)
        return sum(rows for _, rows in self.recent) / max(now - since, 1.0)


@dataclass
class VenueDown:
    since: float
    reason: str


class Progress:
    """The layers' and the ingestor's log lines of this run, folded as they come."""

    def __init__(self) -> None:
        self.layers = {layer: LayerProgress() for layer in LAYERS}
        self.quarantined = 0
        self.down: dict[str, VenueDown] = {}  # connection -> since when it is lost, and why

    def fold(self, line: bytes) -> None:
        if not line.startswith(b"{"):
            return  # the JVM's own lines and our process banners
        try:
            entry: dict[str, Any] = json.loads(line)
            at = _epoch(entry["ts"])
        except (ValueError, KeyError, TypeError):
            return
        event = entry.get("event")
        if event in (events.BATCH, events.QUERY_STARTED):
            self._fold_layer(event, entry, at)
        elif event == events.WAITING_FOR_UPSTREAM:
            table = next((t for t in READERS if str(entry.get("table")).endswith(t)), None)
            if table is not None:
                self.layers[READERS[table]].waiting_for = table
        elif event == events.CONNECTION_LOST:
            connection = str(entry.get("connection")).rpartition("#")[0]  # the link: session labels end in #N
            if connection not in self.down:
                self.down[connection] = VenueDown(at, "")
            self.down[connection].reason = str(entry.get("reason"))
        elif event == events.CONNECTED:
            self.down.pop(str(entry.get("connection")).rpartition("#")[0], None)

    def _fold_layer(self, event: str, entry: dict[str, Any], at: float) -> None:
        query = str(entry.get("query"))
        layer = self.layers.get(query)
        if layer is None:
            return
        if event == events.QUERY_STARTED:
            layer.started_at = layer.started_at or at
            layer.waiting_for = None
            return
        written = entry.get("output_rows")
        if not isinstance(written, int) or written < 0:
            return  # a count the batch did not have
        layer.add(at, written)
        quarantined = entry.get("quarantined_rows")
        if isinstance(quarantined, int):
            self.quarantined += quarantined

    def lines(self, frames: int, bars: list[str], now: float) -> list[str]:
        """The status: a line of counts, then one per symbol's freshest bar and per venue not reached."""
        parts = [f"ingestor {frames:,} frames"]
        for name, layer in self.layers.items():
            unit = "bars" if name == "gold" else "rows"
            if not layer.batches:
                parts.append(
                    f"{name} waiting for {layer.waiting_for}" if layer.waiting_for else f"{name} starting Spark…"
                )
                continue
            text = f"{name} {layer.rows:,} {unit} ({_rate(layer.rate(now))})"
            if name == "silver" and self.quarantined:
                text += f", {self.quarantined:,} quarantined"
            parts.append(text)
        warnings = [
            f"warning: the ingestor has not reached {connection} for {now - down.since:.0f} s, and keeps trying: "
            f"{down.reason}"
            for connection, down in self.down.items()
            if now - down.since >= UNREACHABLE_SECONDS
        ]
        return [" | ".join(parts), *(INDENT + bar for bar in bars), *warnings]


def _rate(per_second: float) -> str:
    # Gold writes a few bars a minute: per second that would read 0.
    return f"{per_second:,.0f}/s" if per_second >= 1 else f"{per_second * 60:,.0f}/min"


def price_decimals(price: Decimal) -> int:
    """The decimals ``price`` needs: the lake keeps ten for every symbol, mostly trailing zeros."""
    exponent = price.normalize().as_tuple().exponent
    return max(0, -exponent) if isinstance(exponent, int) else 0


def freshest_bars(bars: pa.Table) -> list[str]:
    """One line per symbol: its newest bar (the first exchange's, on a tie), with prices at as many decimals as the
    symbol's recent prices have (the lake keeps ten for every symbol)."""
    recent = bars.slice(max(0, bars.num_rows - RECENT_BARS)).to_pylist()
    newest: dict[str, dict[str, Any]] = {}
    decimals: dict[str, int] = {}
    for bar in recent:
        symbol = bar["symbol"]
        if symbol not in newest or bar["bar_start"] > newest[symbol]["bar_start"]:
            newest[symbol] = bar
        places = max(price_decimals(bar[k]) for k in ("open", "high", "low", "close"))
        decimals[symbol] = max(decimals.get(symbol, 0), places)
    lines = []
    for symbol in sorted(newest):
        bar, d = newest[symbol], decimals[symbol]
        lines.append(
            f"latest bar {bar['exchange']} {symbol} {bar['bar_start']:%H:%M} O {bar['open']:.{d}f} "
            f"H {bar['high']:.{d}f} L {bar['low']:.{d}f} C {bar['close']:.{d}f} vwap {bar['vwap']:.{d}f} "
            f"n {bar['trades']}"
        )
    return lines
