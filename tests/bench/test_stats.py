from __future__ import annotations

import random

import pytest

from bench.stats import interpolate, percentile, quantile_table, rolling_median, summary


def test_percentile_interpolates_between_ranks() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 50) == pytest.approx(50.5)
    assert percentile(values, 99) == pytest.approx(99.01)
    assert percentile([3.0], 99) == 3.0


def test_summary_counts_unseen_samples_as_larger_than_any() -> None:
    values = [float(v) for v in range(100)]
    assert summary(values)["p99"] == pytest.approx(98.01)
    censored = summary(values, unseen=5)
    assert censored["p50"] == pytest.approx(52.0) and censored["p99"] is None and censored["max"] is None
    assert censored["count"] == 100 and censored["unseen"] == 5
    assert summary([], unseen=3)["p50"] is None
    assert summary([])["count"] == 0


def test_quantile_table_samples_back_the_distribution() -> None:
    rng = random.Random(1)
    data = [rng.expovariate(1.0) for _ in range(20_000)]
    table = quantile_table(data)
    assert len(table) == 101 and table[0] == min(data) and table[-1] == max(data)
    drawn = [interpolate(table, rng.random()) for _ in range(20_000)]
    for q in (10, 50, 90):
        assert percentile(drawn, q) == pytest.approx(percentile(data, q), rel=0.05)


def test_rolling_median_takes_the_window_ending_at_each_value() -> None:
    assert rolling_median([5.0, 1.0, 3.0, 10.0, 2.0], 3) == [5.0, 3.0, 3.0, 3.0, 3.0]
    assert rolling_median([], 3) == []
