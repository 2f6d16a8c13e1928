"""The generated workload: frames every parser reads as the trades generated, and the fitted distributions."""

from __future__ import annotations

import itertools
from collections import Counter
from decimal import Decimal

import pytest

from bench.frames import records
from bench.workload import BASES, FIRST_TRADE_ID, Fit, Workload, take
from core.venues import FEEDS, FrameKind
from tests import reference

TIME_US = 1_786_310_822_605_123


@pytest.fixture(scope="module")
def fit() -> Fit:
    return Fit.load()


def test_every_venue_frame_parses_to_the_generated_trades(fit: Fit) -> None:
    seen = set()
    for burst in itertools.islice(Workload(fit, seed=2).bursts(), 3_000):
        got: list[reference.Trade] = []
        for record in records(burst, TIME_US):
            symbol = record.key.decode().split(":", 1)[1]
            assert record.key.decode() == f"{burst.venue}:{burst.symbol}" and record.exchange == burst.venue.encode()
            parsed = reference.trades_of(burst.venue, record.value.decode(), symbol)
            assert parsed is not None and len(parsed) == record.trades
            got += parsed
        want = [
            (burst.symbol, str(t.trade_id), Decimal(f"{t.price:.{burst.price_decimals}f}"), Decimal(f"{t.size:.8f}"),
             "buy" if t.taker_buy else "sell")
            for t in burst.trades
        ]  # fmt: skip
        assert [(t.symbol, t.trade_id, t.price, t.size, t.side) for t in got] == want
        # Venues that send milliseconds lose the microseconds; none loses more.
        assert all(0 <= TIME_US - t.time_us < 1_000 for t in got)
        seen.add(burst.venue)
    assert seen == set(fit.venues)


def test_the_ingestor_reads_every_frame_as_a_trade_frame_of_its_symbol(fit: Fit) -> None:
    for burst in itertools.islice(Workload(fit, seed=3).bursts(), 1_000):
        reader = FEEDS[burst.venue]([burst.symbol])
        for record in records(burst, TIME_US):
            kind, symbol = reader.classify(record.value.decode())
            assert (kind, symbol) == (FrameKind.TRADE, burst.symbol)


def test_same_seed_same_bursts_and_ids_count_up_per_stream(fit: Fit) -> None:
    first = list(itertools.islice(Workload(fit, seed=4).bursts(), 2_000))
    assert first == list(itertools.islice(Workload(fit, seed=4).bursts(), 2_000))
    assert first != list(itertools.islice(Workload(fit, seed=5).bursts(), 2_000))
    assert [b.at_s for b in first] == sorted(b.at_s for b in first)
    ids: dict[tuple[str, str], list[int]] = {}
    for burst in first:
        ids.setdefault((burst.venue, burst.symbol), []).extend(t.trade_id for t in burst.trades)
    for got in ids.values():
        assert got == list(range(FIRST_TRADE_ID, FIRST_TRADE_ID + len(got)))


def test_take_stops_at_exactly_the_trades_asked(fit: Fit) -> None:
    assert sum(len(b.trades) for b in take(Workload(fit).bursts(), 12_345)) == 12_345


def test_rates_venues_and_symbols_follow_the_fit(fit: Fit) -> None:
    workload = Workload(fit, seed=6)
    bursts = list(take(workload.bursts(), 200_000))
    span = bursts[-1].at_s - bursts[0].at_s
    assert 200_000 / span == pytest.approx(workload.native_rate, rel=0.05)
    by_venue: Counter[str] = Counter()
    for burst in bursts:
        by_venue[burst.venue] += len(burst.trades)
    for venue, venue_fit in fit.venues.items():
        expected = sum(s.trades_per_s for s in workload.streams if s.venue == venue) / workload.native_rate
        assert by_venue[venue] / 200_000 == pytest.approx(expected, rel=0.15), venue
        sizes = venue_fit.burst_sizes
        mean_burst = sum(k * n for k, n in sizes.items()) / sum(sizes.values())
        mine = [len(b.trades) for b in bursts if b.venue == venue]
        assert sum(mine) / len(mine) == pytest.approx(mean_burst, rel=0.15), venue
    symbols = Counter(b.symbol.split("-")[0] for b in bursts)
    assert [base for base, _ in symbols.most_common(2)] == list(BASES)[:2]


def test_prices_walk_in_ticks_and_sizes_are_heavy_tailed(fit: Fit) -> None:
    trades = [t for b in take(Workload(fit, seed=7).bursts(), 50_000) if b.symbol == "BTC-USDT" for t in b.trades]
    prices = [t.price for t in trades]
    unchanged = sum(a == b for a, b in itertools.pairwise(prices)) / (len(prices) - 1)
    assert unchanged == pytest.approx(fit.price_unchanged_fraction, abs=0.05)
    assert all(Decimal(f"{p:.2f}") == Decimal(str(p)) for p in prices)
    notional = sorted(t.price * t.size for t in trades)
    assert notional[-1] > 100 * notional[len(notional) // 2]
