"""Freshness arithmetic of the live scenario on hand-made commits: rows, bars expected and bars seen."""

from __future__ import annotations

from types import SimpleNamespace

import pyarrow as pa
import pytest

from bench.commits import TIME, Commit, CommitWatcher, visible_after
from bench.live import WATCHED, Window, _report, bars
from bench.produce import PacerStats
from bench.stats import summary
from core.layers import SILVER_TABLE, gold_table
from core.settings import Settings

MINUTE_US = 60_000_000
T0 = 1_786_310_400 * 1_000_000  # a whole hour


def silver(*rows: tuple[str, str, int]) -> pa.Table:
    exchange, symbol, t = zip(*rows, strict=True)
    return pa.table({TIME: pa.array(t, pa.int64()), "exchange": exchange, "symbol": symbol})


def gold(*rows: tuple[str, str, int]) -> pa.Table:
    exchange, symbol, end = zip(*rows, strict=True)
    return pa.table({TIME: pa.array(end, pa.int64()), "exchange": exchange, "symbol": symbol})


@pytest.fixture
def watcher() -> CommitWatcher:
    found = CommitWatcher(Settings(), WATCHED)  # never started: the commits are set by hand
    found.commits[SILVER_TABLE] = [
        Commit(T0 / 1e6 + 2, silver(("binance", "BTC-USDT", T0 + 1_000_000), ("okx", "BTC-USDT", T0 + 2_000_000))),
        Commit(T0 / 1e6 + 65, silver(("binance", "BTC-USDT", T0 + MINUTE_US + 3_000_000))),
    ]
    found.commits[gold_table("1m")] = [
        Commit(T0 / 1e6 + 75, gold(("binance", "BTC-USDT", T0 + MINUTE_US), ("okx", "BTC-USDT", T0 + MINUTE_US))),
    ]
    return found


def test_rows_are_timed_from_their_event_to_their_commit(watcher: CommitWatcher) -> None:
    got = visible_after(watcher.commits[SILVER_TABLE], T0, T0 + 2_000_000)
    assert got == [pytest.approx(1.0)]  # the okx row at +2 s is outside [T0, T0 + 2 s)


def test_bars_expected_are_those_silver_trades_fall_in(watcher: CommitWatcher) -> None:
    first_minute = bars(watcher, gold_table("1m"), Window(500, T0 + 1, T0 + MINUTE_US + 1))
    assert first_minute.expected == {("binance", "BTC-USDT", T0 + MINUTE_US), ("okx", "BTC-USDT", T0 + MINUTE_US)}
    assert first_minute.unseen == 0 and first_minute.freshness() == [pytest.approx(15.0)] * 2
    both = bars(watcher, gold_table("1m"), Window(500, T0 + 1, T0 + 3 * MINUTE_US))
    assert both.unseen == 1  # binance's second minute has not closed in gold
    assert summary(both.freshness(), both.unseen)["p99"] is None
    across = bars(watcher, gold_table("1m", across_venues=True), Window(500, T0 + 1, T0 + MINUTE_US + 1))
    assert across.expected == {("BTC-USDT", T0 + MINUTE_US)} and across.unseen == 1


def test_the_gold_figure_is_over_the_1m_bars_and_the_later_5m_rollups_are_reported_apart(
    watcher: CommitWatcher,
) -> None:
    watcher.commits[gold_table("1m")].append(Commit(T0 / 1e6 + 140, gold(("binance", "BTC-USDT", T0 + 2 * MINUTE_US))))
    across = pa.table({TIME: pa.array([T0 + MINUTE_US, T0 + 2 * MINUTE_US], pa.int64()), "symbol": ["BTC-USDT"] * 2})
    watcher.commits[gold_table("1m", across_venues=True)] = [Commit(T0 / 1e6 + 140, across)]
    pacer = SimpleNamespace(stats=PacerStats())
    report = _report(Window(500, T0 + 1, T0 + 5 * MINUTE_US + 1), watcher, pacer)  # type: ignore[arg-type]
    gold_1m = report["gold_freshness_s"]
    assert (gold_1m["count"], gold_1m["unseen"], gold_1m["max"]) == (5, 0, pytest.approx(80.0))
    assert report["gold_by_table"][gold_table("5m")]["unseen"] == 2  # rolled up, they close a minute after the 1m bars
