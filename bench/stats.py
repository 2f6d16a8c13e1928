"""Order statistics the benchmark reports: percentiles of samples, medians over runs, quantile tables."""

from __future__ import annotations

import itertools
import math
import statistics
from collections.abc import Sequence


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0-100) with linear interpolation between the closest ranks."""
    if not values:
        raise ValueError("percentile of no values")
    return _ranked(sorted(values), q)


def _ranked(ordered: Sequence[float], q: float) -> float:
    rank = (len(ordered) - 1) * q / 100
    low = math.floor(rank)
    if rank == low:
        return ordered[low]  # exact: also where the next value is infinite
    return ordered[low] + (ordered[low + 1] - ordered[low]) * (rank - low)


def summary(values: Sequence[float], unseen: int = 0, qs: Sequence[int] = (50, 95, 99)) -> dict[str, float | None]:
    """``{"p50", "p95", "p99", "max", "count", "unseen"}``, rounded to milliseconds.

    ``unseen`` samples are larger than any value but unknown (rows never seen visible): a percentile that falls among
    them is None.
    """
    ordered = [*sorted(values), *[math.inf] * unseen]
    out: dict[str, float | None] = {f"p{q}": _finite(_ranked(ordered, q)) if ordered else None for q in qs}
    out["max"] = _finite(ordered[-1]) if ordered else None
    out["count"] = len(values)
    out["unseen"] = unseen
    return out


def _finite(x: float) -> float | None:
    return round(x, 3) if math.isfinite(x) else None


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values))


def quantile_table(values: Sequence[float], points: int = 101) -> list[float]:
    """``points`` evenly spaced quantiles from the minimum to the maximum: an empirical distribution to sample."""
    ordered = sorted(values)
    return [_ranked(ordered, 100 * i / (points - 1)) for i in range(points)]


def interpolate(table: Sequence[float], u: float) -> float:
    """The value at cumulative probability ``u`` in [0, 1) of a :func:`quantile_table`: inverse-CDF sampling."""
    position = u * (len(table) - 1)
    i = int(position)
    if i >= len(table) - 1:
        return table[-1]
    return table[i] + (table[i + 1] - table[i]) * (position - i)


def table_mean(table: Sequence[float]) -> float:
    """The mean of what :func:`interpolate` draws from ``table``: uniform between successive points."""
    return sum((a + b) / 2 for a, b in itertools.pairwise(table)) / (len(table) - 1)


def rolling_median(values: Sequence[float], window: int) -> list[float]:
    """The median of each value with the ``window - 1`` before it (fewer at the start)."""
    return [median(values[max(0, i - window + 1) : i + 1]) for i in range(len(values))]
