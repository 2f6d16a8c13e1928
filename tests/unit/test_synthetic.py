import json
from decimal import Decimal
from itertools import groupby

from cryptolake.venue.synthetic import generate

SYMBOLS = ["BTC-USDT", "ETH-USDT", "DOGE-USDT"]


def test_same_seed_same_trades_other_seed_other_trades() -> None:
    def run(seed: int) -> list[object]:
        return list(generate(SYMBOLS, seed=seed, start_ms=0, rate=100, count=500))

    assert run(1) == run(1)
    assert run(1) != run(2)


def test_ids_are_contiguous_per_symbol_and_time_moves_forward() -> None:
    trades = list(generate(SYMBOLS, seed=3, start_ms=1_000, rate=50, count=3_000))
    by_symbol = sorted(trades, key=lambda t: t.symbol)
    for _symbol, group in groupby(by_symbol, key=lambda t: t.symbol):
        ids = [t.trade_id for t in group]
        assert ids == list(range(1_000_000, 1_000_000 + len(ids)))  # from the start's ms, times 1,000
    times = [t.time_ms for t in trades]
    assert times == sorted(times) and times[0] >= 1_000
    # 3,000 trades at 50/s span about a minute of event time.
    assert 50_000 < times[-1] - times[0] < 70_000


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


def test_frame_is_binance_combined_stream_form() -> None:
    trade = next(generate(["ETH-USDT"], seed=1, start_ms=1_723_161_255_342, rate=1, count=1))
    frame = json.loads(trade.binance_frame())
    assert frame["stream"] == "ethusdt@trade"
    data = frame["data"]
    assert data["s"] == "ETHUSDT" and data["t"] == trade.trade_id and data["T"] == trade.time_ms
    assert Decimal(data["p"]) == trade.price and Decimal(data["q"]) == trade.size
    assert data["m"] is trade.buyer_is_maker
