"""Synthetic trades that look like a real venue's: random-walk prices, heavy-tailed sizes, contiguous ids.

Deterministic for a seed, so a test can compute from the same call what the pipeline should produce.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from decimal import Decimal

from core.venues import Binance, TradeText
from core.venues.base import US_PER_MS

# Rough price levels, so the demo's bars look like the markets they are named after.
START_PRICES = {"BTC": 60_000.0, "ETH": 3_000.0, "SOL": 150.0, "BNB": 550.0, "XRP": 0.6, "DOGE": 0.12}
PRICE_STEP = Decimal("0.00000001")
# A run's ids start at its start time in ms times this: a later run on the same lake (a second `make demo`) numbers
# its trades apart from the first's, which silver would otherwise drop as duplicates. Two runs started t ms apart
# share no id until one of them has made t * 1,000 trades of a symbol.
IDS_PER_MS = 1_000


@dataclass(frozen=True)
class Trade:
    symbol: str  # canonical, e.g. BTC-USDT
    trade_id: int
    price: Decimal
    size: Decimal
    time_ms: int
    buyer_is_maker: bool

    @property
    def binance_stream(self) -> str:
        return f"{Binance.venue_symbol(self.symbol)}@trade"

    def binance_frame(self) -> str:
        """The trade as Binance's combined stream sends it."""
        text = TradeText(self.trade_id, f"{self.price:.8f}", f"{self.size:.8f}", taker_buy=not self.buyer_is_maker)
        return Binance.render(self.symbol, [text], self.time_ms * US_PER_MS)[0]


def generate(
    symbols: Sequence[str], *, seed: int, start_ms: int, rate: float, count: int | None = None
) -> Iterator[Trade]:
    """Trades across ``symbols`` at ``rate`` per second of event time, from ``start_ms``; endless if no count.

    Each symbol's ids are contiguous from ``first_trade_id(start_ms)``."""
    rng = random.Random(seed)
    prices = {s: START_PRICES.get(s.split("-")[0], 100.0) for s in symbols}
    next_id = dict.fromkeys(symbols, first_trade_id(start_ms))
    # Zipf-like activity: the first symbol trades most, as BTC does.
    weights = [1 / (rank + 1) for rank in range(len(symbols))]
    clock_ms = float(start_ms)
    produced = 0
    while count is None or produced < count:
        clock_ms += rng.expovariate(rate) * 1000
        symbol = rng.choices(symbols, weights)[0]
        prices[symbol] *= math.exp(rng.gauss(0, 2e-4))
        # Pareto sizes: most trades small, a few very large, as on real books.
        notional = min(20 * rng.paretovariate(1.3), 5_000_000)
        size = Decimal(notional / prices[symbol]).quantize(PRICE_STEP)
        yield Trade(
            symbol=symbol,
            trade_id=next_id[symbol],
            price=_tick(prices[symbol]),
            size=max(size, PRICE_STEP),
            time_ms=int(clock_ms),
            buyer_is_maker=rng.random() < 0.5,
        )
        next_id[symbol] += 1
        produced += 1


def first_trade_id(start_ms: int) -> int:
    return start_ms * IDS_PER_MS


def _tick(price: float) -> Decimal:
    """Round to a plausible tick: 0.01 for large prices, finer for small ones."""
    decimals = max(2, min(8, 6 - math.floor(math.log10(price))))
    return Decimal(price).quantize(Decimal(1).scaleb(-decimals))
