"""Synthetic trades that look like real venues': one market per symbol that every venue follows, heavy-tailed sizes,
contiguous ids.

Each symbol has one fair price, a random walk in event time with a jump every one to three minutes. A venue trades at
the fair price plus its own basis (a few bps, fixed for a run) and noise, and sees a jump a moment after the venue
that leads it. Deterministic for a seed, so a test can compute from the same call what the pipeline should produce.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from decimal import Decimal

from core.venues import LAKE_VENUES, Binance, TradeText
from core.venues.base import US_PER_MS

# Rough price levels, so the demo's bars look like the markets they are named after.
START_PRICES = {"BTC": 60_000.0, "ETH": 3_000.0, "SOL": 150.0, "BNB": 550.0, "XRP": 0.6, "DOGE": 0.12}
PRICE_STEP = Decimal("0.00000001")
# A run's ids start at its start time in ms times this: a later run on the same lake (a second `make demo`) numbers
# its trades apart from the first's, which silver would otherwise drop as duplicates. Two runs started t ms apart
# share no id until one of them has made t * 1,000 trades of a venue's symbol.
IDS_PER_MS = 1_000
# Each venue's share of the trades, Binance's the largest as on real markets; the demo serves them all.
ACTIVITY = {"binance": 1.0, "okx": 0.6, "bybit": 0.5, "coinbase": 0.4, "kraken": 0.25}
DEMO_VENUES = tuple(ACTIVITY)
VOLATILITY = 1e-4  # of the fair price's log, per square root of a second: about 0.17 % in five minutes
BASIS_BPS = 5.0  # each venue's basis is drawn between minus and plus this, once per run
NOISE_BPS = 1.0  # standard deviation of a trade's price around its venue's
# Jumps come this many seconds apart per symbol, at most three minutes: every five-minute window holds one, so a
# "1 % within 5 minutes" rule fires in any ten minutes of a demo.
JUMP_EVERY_S = (60.0, 180.0)
JUMP_SIZE = (0.015, 0.025)  # of the price, up or down
JUMP_LAG_S = (0.2, 2.0)  # how long after the leading venue each other venue sees a jump


@dataclass(frozen=True)
class Trade:
    venue: str  # the venue's name, e.g. binance
    symbol: str  # canonical, e.g. BTC-USDT
    trade_id: int
    price: Decimal
    size: Decimal
    time_ms: int
    buyer_is_maker: bool

    @property
    def stream(self) -> str:
        """Binance's stream name, which its combined-stream URL subscribes to; empty on other venues."""
        return f"{Binance.venue_symbol(self.symbol)}@trade" if self.venue == Binance.name else ""

    def frame(self) -> str:
        """The trade as its venue sends it."""
        text = TradeText(self.trade_id, f"{self.price:.8f}", f"{self.size:.8f}", taker_buy=not self.buyer_is_maker)
        return LAKE_VENUES[self.venue].render(self.symbol, [text], self.time_ms * US_PER_MS)[0]


@dataclass(frozen=True)
class _Jump:
    factor: float
    seen_ms: dict[str, float]  # when each venue sees it


def generate(
    symbols: Sequence[str],
    *,
    seed: int,
    start_ms: int,
    rate: float,
    count: int | None = None,
    venues: Sequence[str] = (Binance.name,),
) -> Iterator[Trade]:
    """Trades of ``venues`` across ``symbols`` at ``rate`` per second of event time in all, from ``start_ms``;
    endless if no count.

    Each venue's ids of each symbol are contiguous from ``first_trade_id(start_ms)``."""
    check_venues(venues)
    rng = random.Random(seed)
    start = {s: START_PRICES.get(s.split("-")[0], 100.0) for s in symbols}
    fair = dict(start)
    walked_ms = dict.fromkeys(symbols, float(start_ms))
    next_jump_ms = {s: start_ms + rng.uniform(*JUMP_EVERY_S) * 1000 for s in symbols}
    last_jump: dict[str, _Jump] = {}
    basis = {v: rng.uniform(-BASIS_BPS, BASIS_BPS) / 10_000 for v in venues}
    next_id = {(v, s): first_trade_id(start_ms) for v in venues for s in symbols}
    # Zipf-like activity: the first symbol trades most, as BTC does.
    weights = [1 / (rank + 1) for rank in range(len(symbols))]
    venue_weights = [ACTIVITY[v] for v in venues]
    clock_ms = float(start_ms)
    produced = 0
    while count is None or produced < count:
        clock_ms += rng.expovariate(rate) * 1000
        venue = rng.choices(venues, venue_weights)[0]
        symbol = rng.choices(symbols, weights)[0]
        while next_jump_ms[symbol] <= clock_ms:
            last_jump[symbol] = _jump(rng, venues, next_jump_ms[symbol], fair[symbol] / start[symbol])
            fair[symbol] *= last_jump[symbol].factor
            next_jump_ms[symbol] += rng.uniform(*JUMP_EVERY_S) * 1000
        fair[symbol] *= math.exp(rng.gauss(0, VOLATILITY * math.sqrt((clock_ms - walked_ms[symbol]) / 1000)))
        walked_ms[symbol] = clock_ms
        seen = fair[symbol]
        jump = last_jump.get(symbol)
        if jump is not None and clock_ms < jump.seen_ms[venue]:
            seen /= jump.factor
        price = seen * math.exp(basis[venue] + rng.gauss(0, NOISE_BPS / 10_000))
        # Pareto sizes: most trades small, a few very large, as on real books.
        notional = min(20 * rng.paretovariate(1.3), 5_000_000)
        size = Decimal(notional / price).quantize(PRICE_STEP)
        yield Trade(
            venue=venue,
            symbol=symbol,
            trade_id=next_id[venue, symbol],
            price=_tick(price),
            size=max(size, PRICE_STEP),
            time_ms=int(clock_ms),
            buyer_is_maker=rng.random() < 0.5,
        )
        next_id[venue, symbol] += 1
        produced += 1


def _jump(rng: random.Random, venues: Sequence[str], at_ms: float, drift: float) -> _Jump:
    """A jump at ``at_ms``, likelier down the further the price has risen from its start (``drift``: their ratio),
    and up the further it has fallen, so that an hour's demo stays near the markets' levels."""
    down = min(0.9, max(0.1, 0.5 + 10 * math.log(drift)))
    size = rng.uniform(*JUMP_SIZE)
    leader = rng.choice(venues)
    seen_ms = {v: at_ms + (0.0 if v == leader else rng.uniform(*JUMP_LAG_S) * 1000) for v in venues}
    return _Jump(1 - size if rng.random() < down else 1 + size, seen_ms)


def check_venues(venues: Sequence[str]) -> None:
    """Raises ValueError unless ``venues`` are some of those the generator knows."""
    if not venues or any(v not in ACTIVITY for v in venues):
        raise ValueError(f"synthetic venues must be some of {','.join(ACTIVITY)}, not {','.join(venues) or 'none'}")


def first_trade_id(start_ms: int) -> int:
    return start_ms * IDS_PER_MS


def _tick(price: float) -> Decimal:
    """Round to a plausible tick: 0.01 for large prices, finer for small ones."""
    decimals = max(2, min(8, 6 - math.floor(math.log10(price))))
    return Decimal(price).quantize(Decimal(1).scaleb(-decimals))
