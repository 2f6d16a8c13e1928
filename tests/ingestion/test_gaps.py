"""Gap and duplicate counting per symbol, on a clock the test moves."""

from __future__ import annotations

import logging

import pytest

from ingestion.gaps import MAX_OPEN_HOLES, GapTracker
from ingestion.metrics import Metrics


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def tracker(grace: float = 5.0) -> tuple[GapTracker, Metrics, Clock]:
    metrics, clock = Metrics(), Clock()
    return GapTracker("coinbase", metrics, grace, clock), metrics, clock


def counts(metrics: Metrics, symbol: str = "BTC-USD") -> list[float]:
    """Gaps, missing trades, duplicates."""
    names = ("gaps_total", "missing_trades_total", "duplicate_trades_total")
    return [metrics.value(name, exchange="coinbase", symbol=symbol) for name in names]


def feed(gaps: GapTracker, ids: list[int], symbol: str = "BTC-USD") -> None:
    for trade_id in ids:
        gaps.observe(symbol, trade_id)


def test_contiguous_ids_are_neither_gaps_nor_duplicates() -> None:
    gaps, metrics, clock = tracker()
    feed(gaps, list(range(100, 200)))
    clock.now = 60
    gaps.sweep()
    assert counts(metrics) == [0, 0, 0]


def test_a_hole_counts_as_a_gap_once_the_grace_period_is_over(caplog: pytest.LogCaptureFixture) -> None:
    gaps, metrics, clock = tracker()
    feed(gaps, [1, 2, 6, 7])
    clock.now = 4.9
    gaps.sweep()
    assert counts(metrics) == [0, 0, 0]
    clock.now = 5.0
    with caplog.at_level(logging.WARNING):
        gaps.sweep()
    assert counts(metrics) == [1, 3, 0]
    (record,) = caplog.records
    assert record.__dict__["fields"] == {
        "exchange": "coinbase",
        "symbol": "BTC-USD",
        "missing": 3,
        "first_missing_id": 3,
        "last_missing_id": 5,
    }


def test_late_trades_fill_their_hole_and_what_remains_is_the_gap() -> None:
    gaps, metrics, clock = tracker()
    feed(gaps, [1, 10, 4, 2, 9])  # slightly out of order, as Coinbase delivers them
    clock.now = 10
    gaps.sweep()
    assert counts(metrics) == [2, 5, 0]  # 3 and 5..8 never came


def test_trades_seen_before_are_duplicates_as_after_a_snapshot_on_reconnect() -> None:
    gaps, metrics, clock = tracker()
    feed(gaps, [1, 2, 3, 4, 5])
    feed(gaps, [3, 4, 5, 6])  # the reconnect's snapshot repeats 3..5
    clock.now = 10
    gaps.sweep()
    assert counts(metrics) == [0, 0, 3]


def test_symbols_are_tracked_apart() -> None:
    gaps, metrics, clock = tracker()
    feed(gaps, [1, 2], "BTC-USD")
    feed(gaps, [50, 52], "ETH-USD")
    clock.now = 10
    gaps.sweep()
    assert counts(metrics, "BTC-USD") == [0, 0, 0]
    assert counts(metrics, "ETH-USD") == [1, 1, 0]


def test_a_gap_is_counted_on_the_next_trade_without_a_sweep() -> None:
    gaps, metrics, clock = tracker()
    feed(gaps, [1, 3])
    clock.now = 6
    feed(gaps, [4])
    assert counts(metrics) == [1, 1, 0]


def test_open_holes_are_bounded() -> None:
    gaps, metrics, _ = tracker()
    ids = list(range(0, 2 * (MAX_OPEN_HOLES + 10), 2))  # every other id missing: a hole after each but the first
    feed(gaps, ids)
    # The holes beyond the bound were counted at once, oldest first, before their grace ended.
    assert counts(metrics) == [len(ids) - 1 - MAX_OPEN_HOLES, len(ids) - 1 - MAX_OPEN_HOLES, 0]
