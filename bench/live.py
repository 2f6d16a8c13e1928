"""Live: the workload paced into Kafka at steady rates, event times now; freshness of silver rows and gold bars.

One pipeline runs every rate in turn (500 then 5,000 trades/s by default), ``seconds`` each. Measured per rate, over
the rows and bars of its window (its first ``settle`` seconds left out, while the pipeline adjusts to the new rate):

- silver: from a trade's event time to the commit of the silver batch holding it;
- gold: from a bar's end to the commit of the gold batch holding it complete (1m bars per venue and across venues,
  5m bars).

Visibility is the table's commit (see bench/commits.py): readers of the log see the rows from that instant.
The trades expected are those sent; the bars expected are those silver's trades fall in. After the last rate the
load goes on for ``TAIL_S`` (so the last window's bars can close), then the lake is given up to ``CATCH_UP_S`` to show
everything expected; what it still does not show is counted as unseen (a percentile among unseen ones is null).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from bench.commits import TIME, CommitWatcher, Watch, visible_after, within
from bench.produce import SENT_BIN_US, Pacer
from bench.stack import Stack, Tuning, pipeline, wait_on
from bench.stats import percentile, summary
from bench.workload import Workload
from core.layers import SILVER_TABLE, gold_table
from cryptolake.runner import Pipeline

TAIL_S = 45.0
CATCH_UP_S = 120.0
WARM_UP_LIMIT_S = 300.0
POLL_S = 1.0
VENUE_KEYS = ("exchange", "symbol")
GOLD = {  # table -> bar width in seconds, columns naming a bar's series
    gold_table("1m"): (60, VENUE_KEYS),
    gold_table("1m", across_venues=True): (60, ("symbol",)),
    gold_table("5m"): (300, VENUE_KEYS),
}
# The tables the gold freshness figure is over: the 1m bars. 5m bars are rolled up from them and come a minute later
# by design (jobs/gold.py, ``rollup``); they are reported apart, under ``gold_by_table``.
GOLD_1M = (gold_table("1m"), gold_table("1m", across_venues=True))
# Gold's symbol is a partition: it comes with the path. A bar counts once complete, not while it forms.
WATCHED = {SILVER_TABLE: Watch("event_time", VENUE_KEYS)} | {
    table: Watch("bar_end", ("exchange",) if "exchange" in keys else (), complete=True)
    for table, (_, keys) in GOLD.items()
}


@dataclass(frozen=True)
class Window:
    rate: float
    start_us: int  # the settling time already left out; both ends on SENT_BIN_US boundaries
    end_us: int


class LiveError(RuntimeError):
    pass


def _window(rate: float, start: float, end: float) -> Window:
    def align(t: float) -> int:
        return math.ceil(t * 1e6 / SENT_BIN_US) * SENT_BIN_US

    return Window(rate, align(start), align(end))


@dataclass(frozen=True)
class Bars:
    """A gold table's bars that end in a window: those expected from silver's trades, and those it shows."""

    expected: set[tuple[Any, ...]]
    seen: dict[tuple[Any, ...], float]  # bar (series..., end in us) -> commit time

    @property
    def unseen(self) -> int:
        return len(self.expected - self.seen.keys())

    def freshness(self) -> list[float]:
        return [at - key[-1] / 1e6 for key, at in self.seen.items()]


def bars(watcher: CommitWatcher, table: str, window: Window) -> Bars:
    width_s, keys = GOLD[table]
    width_us = width_s * 1_000_000
    silver = pa.concat_tables([c.rows for c in watcher.commits[SILVER_TABLE]] or [_empty_silver()])
    ends = pc.multiply(pc.add(pc.divide(silver[TIME], width_us), 1), width_us)  # integer division: the bar's end
    trades = within(pa.table({**{k: silver[k] for k in keys}, TIME: ends}), window.start_us, window.end_us)
    distinct = trades.group_by([*keys, TIME]).aggregate([])
    expected = set(zip(*(distinct[c].to_pylist() for c in (*keys, TIME)), strict=True))
    seen: dict[tuple[Any, ...], float] = {}
    for commit in watcher.commits[table]:
        rows = within(commit.rows, window.start_us, window.end_us)
        for key in zip(*(rows[c].to_pylist() for c in (*keys, TIME)), strict=True):
            seen.setdefault(key, commit.at)
    return Bars(expected, seen)


def _empty_silver() -> pa.Table:
    return pa.table({TIME: pa.array([], pa.int64()), **{k: pa.array([], pa.string()) for k in VENUE_KEYS}})


def _latest(watcher: CommitWatcher, table: str) -> int:
    """The latest time (us) of any row ``table`` has made visible, 0 if none."""
    return max((pc.max(c.rows[TIME]).as_py() or 0 for c in watcher.commits[table]), default=0)


def _caught_up(watcher: CommitWatcher, window: Window) -> bool:
    """Every trade of the window is in silver, and every bar of it in gold."""
    if _latest(watcher, SILVER_TABLE) < window.end_us:
        return False
    return all(bars(watcher, table, window).unseen == 0 for table in GOLD)


def _keep_running(running: Pipeline, pacer: Pacer, watcher: CommitWatcher, seconds: float) -> None:
    """Let ``seconds`` pass, restarting failed layers; raise if the pacer or the watcher failed."""
    until = time.time() + seconds
    while time.time() < until:
        running.restart_failed()
        for part in (pacer, watcher):
            if part.error is not None:
                raise LiveError(f"{part.name} failed: {part.error!r}") from part.error
        time.sleep(min(POLL_S, max(0.0, until - time.time())))


def run(
    stack: Stack,
    tuning: Tuning,
    workload: Workload,
    rates: list[float],
    seconds: float,
    on_pipeline: Callable[[Pipeline | None], None],
) -> dict[str, Any]:
    settings = stack.run_settings("live")
    watcher = CommitWatcher(settings, WATCHED)
    settle = min(30.0, seconds / 4)
    windows = []
    with pipeline(settings, tuning) as running:
        on_pipeline(running)
        pacer = Pacer(settings, workload, rates[0])
        pacer.start()
        watcher.start()
        try:
            if not wait_on(running, lambda: bool(watcher.commits[SILVER_TABLE]), WARM_UP_LIMIT_S, POLL_S):
                raise LiveError(f"silver committed nothing within {WARM_UP_LIMIT_S:.0f}s of the start")
            for rate in rates:
                pacer.set_rate(rate)
                start = time.time()
                _keep_running(running, pacer, watcher, seconds)
                windows.append(_window(rate, start + settle, time.time()))
            _keep_running(running, pacer, watcher, TAIL_S)
        finally:
            pacer.stop()
        caught_up = wait_on(running, lambda: _caught_up(watcher, windows[-1]), CATCH_UP_S, POLL_S)
        restarts = sum(running.restarts.values())
    on_pipeline(None)
    watcher.stop()
    return {
        "rates": {f"{w.rate:g}": _report(w, watcher, pacer) for w in windows},
        "seconds_per_rate": seconds,
        "settle_s": settle,
        "caught_up": caught_up,
        "restarts": restarts,
        "sent_trades": pacer.stats.trades,
        "pacer_lag_p99_s": round(percentile(pacer.stats.lag_s, 99), 4) if pacer.stats.lag_s else None,
    }


def _report(window: Window, watcher: CommitWatcher, pacer: Pacer) -> dict[str, Any]:
    seconds = (window.end_us - window.start_us) / 1e6
    silver = visible_after(watcher.commits[SILVER_TABLE], window.start_us, window.end_us)
    sent = pacer.stats.trades_between(window.start_us, window.end_us)
    per_table = {table: bars(watcher, table, window) for table in GOLD}
    return {
        "window_s": round(seconds, 1),
        "achieved_trades_per_s": round(sent / seconds, 1),
        "silver_freshness_s": summary(silver, max(0, sent - len(silver))),
        "gold_freshness_s": summary(
            [f for t in GOLD_1M for f in per_table[t].freshness()], sum(per_table[t].unseen for t in GOLD_1M)
        ),
        "gold_by_table": {table: summary(b.freshness(), b.unseen) for table, b in per_table.items()},
    }
