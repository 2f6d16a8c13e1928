import json
from collections import defaultdict
from decimal import Decimal
from itertools import groupby

import pytest

from cryptolake.venue.synthetic import DEMO_VENUES, Trade, generate

SYMBOLS = ["BTC-USDT", "ETH-USDT", "DOGE-USDT"]
MINUTE_MS = 60_000


@pytest.mark.parametrize("venues", [("binance",), DEMO_VENUES])
def test_same_seed_same_trades_other_seed_other_trades(venues: tuple[str, ...]) -> None:
    def run(seed: int) -> list[object]:
        return list(generate(SYMBOLS, seed=seed, start_ms=0, rate=100, count=500, venues=venues))

    assert run(1) == run(1)
    assert run(1) != run(2)


@pytest.mark.parametrize("venues", [("binance",), DEMO_VENUES])
def test_ids_are_contiguous_per_venue_and_symbol_and_time_moves_forward(venues: tuple[str, ...]) -> None:
    trades = list(generate(SYMBOLS, seed=3, start_ms=1_000, rate=50, count=3_000, venues=venues))
    streams = sorted(trades, key=lambda t: (t.venue, t.symbol))
    for _stream, group in groupby(streams, key=lambda t: (t.venue, t.symbol)):
        ids = [t.trade_id for t in group]
        assert ids == list(range(1_000_000, 1_000_000 + len(ids)))  # from the start's ms, times 1,000
    assert {(t.venue, t.symbol) for t in trades} == {(v, s) for v in venues for s in SYMBOLS}
    times = [t.time_ms for t in trades]
    assert times == sorted(times) and times[0] >= 1_000
    # 3,000 trades at 50/s span about a minute of event time.
    assert 50_000 < times[-1] - times[0] < 70_000


def test_venues_trade_at_different_rates() -> None:
    trades = list(generate(SYMBOLS, seed=4, start_ms=0, rate=100, count=20_000, venues=DEMO_VENUES))
    counts = sorted(sum(t.venue == v for t in trades) for v in DEMO_VENUES)
    assert counts[-1] > 2 * counts[0]


def _means_per_second(trades: list[Trade]) -> dict[int, dict[str, float]]:
    """BTC-USDT's mean price per venue in each second that several venues traded it."""
    prices: dict[int, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for t in trades:
        if t.symbol == "BTC-USDT":
            prices[t.time_ms // 1000][t.venue].append(float(t.price))
    means = {s: {v: sum(p) / len(p) for v, p in by_venue.items()} for s, by_venue in prices.items()}
    return {s: by_venue for s, by_venue in means.items() if len(by_venue) > 1}


def test_the_venues_prices_follow_one_another_within_a_few_bps() -> None:
    # Half an hour of event time, ten jumps or more of each symbol among it.
    trades = list(generate(SYMBOLS, seed=6, start_ms=0, rate=50, count=90_000, venues=DEMO_VENUES))
    spreads = sorted(max(m.values()) / min(m.values()) - 1 for m in _means_per_second(trades).values())
    assert len(spreads) > 1_500
    # Bases of at most 5 bps either way, and 1 bp of noise; a venue that has not yet followed a jump is further off.
    assert spreads[len(spreads) // 2] < 0.0012
    assert spreads[int(len(spreads) * 0.95)] < 0.0015
    assert spreads[-1] < 0.03  # a jump's size at most, with the bases and noise
    # ... yet the venues' prices differ: a spread, not one price.
    assert spreads[len(spreads) // 2] > 0.0001


def test_a_jump_of_one_percent_comes_within_every_five_minutes_on_every_venue() -> None:
    trades = list(generate(SYMBOLS, seed=8, start_ms=0, rate=50, count=90_000, venues=DEMO_VENUES))
    end_ms = trades[-1].time_ms
    assert end_ms > 25 * MINUTE_MS
    for venue in DEMO_VENUES:
        prices = [(t.time_ms, t.price) for t in trades if t.venue == venue and t.symbol == "BTC-USDT"]
        for start in range(0, end_ms - 5 * MINUTE_MS, MINUTE_MS // 2):
            window = [p for ms, p in prices if start <= ms < start + 5 * MINUTE_MS]
            assert max(window) / min(window) > Decimal("1.01"), f"{venue}: no 1 % move in 5 min from {start} ms"


def test_runs_started_apart_share_no_trade_id() -> None:
    # A second run on the same lake, one second after the first: its trades are new ones, not the first run's again.
    first = {
        (t.symbol, t.trade_id) for t in generate(SYMBOLS, seed=1, start_ms=1_723_161_255_342, rate=100, count=5_000)
    }
    second = {
        (t.symbol, t.trade_id) for t in generate(SYMBOLS, seed=1, start_ms=1_723_161_256_342, rate=100, count=5_000)
    }
    assert len(first) == len(second) == 5_000
    assert not first & second


def test_prices_walk_and_sizes_have_a_heavy_tail() -> None:
    trades = [t for t in generate(SYMBOLS, seed=5, start_ms=0, rate=100, count=20_000) if t.symbol == "BTC-USDT"]
    prices = [t.price for t in trades]
    sizes = sorted(t.size for t in trades)
    assert len(set(prices)) > len(prices) // 2
    assert all(p > 0 for p in prices) and all(s > 0 for s in sizes)
    median = sizes[len(sizes) // 2]
    assert sizes[-1] > 50 * median  # a Gaussian would not reach this far


def test_a_binance_frame_is_in_the_combined_stream_form() -> None:
    trade = next(generate(["ETH-USDT"], seed=1, start_ms=1_723_161_255_342, rate=1, count=1))
    frame = json.loads(trade.frame())
    assert frame["stream"] == "ethusdt@trade"
    data = frame["data"]
    assert data["s"] == "ETHUSDT" and data["t"] == trade.trade_id and data["T"] == trade.time_ms
    assert Decimal(data["p"]) == trade.price and Decimal(data["q"]) == trade.size
    assert data["m"] is trade.buyer_is_maker
