"""The benchmark's trades: ten symbols on five venues, drawn from distributions fitted to recorded sessions.

The fitted parameters live in ``workload.json`` beside this file (written by ``python -m bench.fit``). Each venue and
symbol is a stream of bursts (trades sharing one matching-engine time, as a taker sweeping several orders makes):

- a stream's trade rate is its venue's fitted trades per second per symbol, times a Zipf weight of the symbol's
  activity rank (BTC first) whose exponent is fitted from the recorded BTC and ETH counts;
- the gaps between a stream's bursts follow the recorded gap distribution, scaled to the stream's rate;
- the trades per burst, their notional (price x size) and the taker's side follow the venue's fit;
- prices walk: each trade keeps the last price with the fitted probability, else moves by a fitted log step.

Times here are seconds of the workload's own clock, at its native (fitted) rate; a caller maps them to event times,
at that rate (backfill) or scaled to another (live).
"""

from __future__ import annotations

import heapq
import itertools
import json
import math
import random
from bisect import bisect_right
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from bench.stats import interpolate, table_mean

FIT_PATH = Path(__file__).with_name("workload.json")
# Most active first. The captures hold BTC and ETH only: the other levels are rounded market prices, which matter only
# for the number of digits a frame carries.
BASES = {
    "BTC": 61_800.0,
    "ETH": 2_680.0,
    "SOL": 150.0,
    "XRP": 0.55,
    "DOGE": 0.11,
    "BNB": 520.0,
    "ADA": 0.35,
    "LTC": 62.0,
    "LINK": 10.5,
    "AVAX": 21.0,
}
# Each venue's usual quote for these bases.
QUOTES = {"binance": "USDT", "kraken": "USD", "coinbase": "USD", "bybit": "USDT", "okx": "USDT"}
SIZE_DECIMALS = 8
FIRST_TRADE_ID = 1_000_000


@dataclass(frozen=True)
class VenueFit:
    trades_per_s_per_symbol: float
    burst_sizes: dict[int, int]  # trades in a burst -> how many recorded bursts had that many
    log_notional_quantiles: list[float]  # quantile table of ln(price x size), in the quote currency
    taker_buy_fraction: float
    fitted_from: list[str]  # the recordings; empty where the venue's own were too few and all venues' were pooled


@dataclass(frozen=True)
class Fit:
    symbol_zipf_exponent: float
    gap_shape_quantiles: list[float]  # quantile table of (gap between a stream's bursts) / (mean gap)
    price_unchanged_fraction: float
    price_log_step_sd: float
    venues: dict[str, VenueFit]

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Fit:
        venues = {
            name: VenueFit(**{**v, "burst_sizes": {int(k): n for k, n in v["burst_sizes"].items()}})
            for name, v in data["venues"].items()
        }
        return cls(**{**data, "venues": venues})

    @classmethod
    def load(cls, path: Path = FIT_PATH) -> Fit:
        return cls.from_json(json.loads(path.read_text()))


@dataclass(frozen=True, slots=True)
class Trade:
    trade_id: int
    price: float
    size: float
    taker_buy: bool


@dataclass(frozen=True, slots=True)
class Burst:
    venue: str
    symbol: str  # canonical BASE-QUOTE
    price_decimals: int
    at_s: float  # on the workload's clock
    trades: tuple[Trade, ...]


def price_decimals(level: float) -> int:
    """Ticks of about seven significant digits, at least cents: 61800.00, 2680.000, 0.1100000."""
    return min(8, max(2, 7 - max(0, math.floor(math.log10(level)) + 1)))


class _Stream:
    """One venue's trades in one symbol."""

    def __init__(self, venue: str, base: str, fit: VenueFit, trades_per_s: float) -> None:
        self.venue = venue
        self.symbol = f"{base}-{QUOTES[venue]}"
        self.fit = fit
        self.price = BASES[base]
        self.decimals = price_decimals(self.price)
        self.next_id = FIRST_TRADE_ID
        sizes = sorted(fit.burst_sizes)
        counts = [fit.burst_sizes[s] for s in sizes]
        self.burst_sizes = sizes
        self.cumulative = list(itertools.accumulate(counts))
        mean_burst = sum(s * n for s, n in zip(sizes, counts, strict=True)) / self.cumulative[-1]
        self.mean_gap_s = mean_burst / trades_per_s
        self.trades_per_s = trades_per_s


class Workload:
    """An endless, deterministic (for a seed) sequence of bursts over every venue of the fit and ten symbols."""

    def __init__(self, fit: Fit, *, seed: int = 1) -> None:
        self.fit = fit
        self.rng = random.Random(seed)
        # Sampling the quantile table interpolates between its points: divide by that distribution's own mean.
        self._gap_scale = 1 / table_mean(fit.gap_shape_quantiles)
        self.streams = [
            _Stream(venue, base, venue_fit, venue_fit.trades_per_s_per_symbol / (rank + 1) ** fit.symbol_zipf_exponent)
            for venue, venue_fit in fit.venues.items()
            for rank, base in enumerate(BASES)
        ]

    @property
    def native_rate(self) -> float:
        """Trades per second of the workload's clock, summed over every stream."""
        return sum(s.trades_per_s for s in self.streams)

    def bursts(self) -> Iterator[Burst]:
        """Every stream's bursts, merged in time order."""
        pending = [(self._gap(s), i) for i, s in enumerate(self.streams)]
        heapq.heapify(pending)
        while True:
            at_s, i = pending[0]
            stream = self.streams[i]
            yield Burst(stream.venue, stream.symbol, stream.decimals, at_s, self._trades(stream))
            heapq.heapreplace(pending, (at_s + self._gap(stream), i))

    def _gap(self, stream: _Stream) -> float:
        return interpolate(self.fit.gap_shape_quantiles, self.rng.random()) * self._gap_scale * stream.mean_gap_s

    def _trades(self, stream: _Stream) -> tuple[Trade, ...]:
        rng, fit = self.rng, self.fit
        count = stream.burst_sizes[bisect_right(stream.cumulative, rng.random() * stream.cumulative[-1])]
        taker_buy = rng.random() < stream.fit.taker_buy_fraction  # one taker order: one side for the burst
        trades = []
        for _ in range(count):
            if rng.random() >= fit.price_unchanged_fraction:
                stream.price = round(stream.price * math.exp(rng.gauss(0, fit.price_log_step_sd)), stream.decimals)
            notional = math.exp(interpolate(stream.fit.log_notional_quantiles, rng.random()))
            size = max(round(notional / stream.price, SIZE_DECIMALS), 10**-SIZE_DECIMALS)
            trades.append(Trade(stream.next_id, stream.price, size, taker_buy))
            stream.next_id += 1
        return tuple(trades)


def take(bursts: Iterator[Burst], trades: int) -> Iterator[Burst]:
    """Bursts up to exactly ``trades`` trades, the last one cut short if need be."""
    left = trades
    for burst in bursts:
        if left <= 0:
            return
        if len(burst.trades) > left:
            burst = Burst(burst.venue, burst.symbol, burst.price_decimals, burst.at_s, burst.trades[:left])
        left -= len(burst.trades)
        yield burst
