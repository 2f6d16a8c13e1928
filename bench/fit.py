"""Fit the workload's distributions to the recorded sessions in ../shared/fixtures, into bench/workload.json.

Only the fitted parameters are committed, never the recordings. A venue with fewer than ``MIN_TRADES`` recorded trades
(Kraken: ten, and only in its v1 protocol) takes the distributions of all venues pooled, keeping its own rate.

    .venv/bin/python -m bench.fit [--fixtures DIR]
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from bench.stats import quantile_table
from bench.workload import FIT_PATH, Fit, VenueFit

FIXTURES = Path(__file__).resolve().parents[2] / "shared" / "fixtures"
MIN_TRADES = 50
SIGNIFICANT_DIGITS = 6


@dataclass(frozen=True)
class Recorded:
    symbol: str
    time_ms: float
    price: float
    size: float
    taker_buy: bool


def _iso_ms(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1000


def _binance(m: Any) -> list[Recorded]:
    if "stream" not in m:
        return []
    d = m["data"]
    return [Recorded(d["s"], d["T"], float(d["p"]), float(d["q"]), not d["m"])]


def _coinbase(m: Any) -> list[Recorded]:
    if m.get("channel") != "market_trades":
        return []
    # Snapshots repeat trades from before the session; the maker's side is given, so the taker bought on SELL.
    return [
        Recorded(t["product_id"], _iso_ms(t["time"]), float(t["price"]), float(t["size"]), t["side"] == "SELL")
        for e in m["events"]
        if e["type"] == "update"
        for t in e["trades"]
    ]


def _bybit(m: Any) -> list[Recorded]:
    if not str(m.get("topic", "")).startswith("publicTrade."):
        return []
    return [Recorded(t["s"], t["T"], float(t["p"]), float(t["v"]), t["S"] == "Buy") for t in m["data"]]


def _okx(m: Any) -> list[Recorded]:
    if "data" not in m or m.get("arg", {}).get("channel") != "trades":
        return []
    return [
        Recorded(t["instId"], float(t["ts"]), float(t["px"]), float(t["sz"]), t["side"] == "buy") for t in m["data"]
    ]


def _kraken_v1(m: Any) -> list[Recorded]:
    # [channelID, [[price, volume, time, side, type, misc], ...], "trade", pair]
    if not isinstance(m, list) or m[-2] != "trade":
        return []
    return [Recorded(m[-1], float(t[2]) * 1000, float(t[0]), float(t[1]), t[3] == "b") for t in m[1]]


Reader = Callable[[Any], list[Recorded]]
CAPTURES: dict[str, tuple[Reader, tuple[str, ...]]] = {
    "binance": (
        _binance,
        (
            "binance/spot_btcusdt_trade_combined_20240808.replay.jsonl",
            "binance/spot_ethusdt_trade_combined_20240808.replay.jsonl",
        ),
    ),
    "kraken": (_kraken_v1, ("kraken/v1_trade_session_20210417.replay.jsonl",)),
    "coinbase": (_coinbase, ("coinbase/advanced_trade_market_trades.replay.jsonl",)),
    "bybit": (
        _bybit,
        ("bybit/v5_spot_publicTrade_session.replay.jsonl", "bybit/v5_linear_publicTrade_session.replay.jsonl"),
    ),
    "okx": (_okx, ("okx/v5_trades_session_20220513.replay.jsonl",)),
}
# The one long capture (six minutes of contiguous trades) fits the time between bursts and the symbols' activity.
TIMING_VENUE = "binance"


def frames(path: Path, read: Reader) -> Iterator[list[Recorded]]:
    """The trades of each received frame that carries any."""
    with path.open() as lines:
        for line in lines:
            entry = json.loads(line)
            if entry["dir"] == "recv":
                trades = read(json.loads(entry["raw"]))
                if trades:
                    yield trades


def bursts(frame_list: list[list[Recorded]], one_per_frame: bool) -> list[list[Recorded]]:
    """Trades of one symbol at one time: a frame's trades, or (Binance: one trade a frame) runs of equal times."""
    if not one_per_frame:
        return frame_list
    out: list[list[Recorded]] = []
    for (trade,) in frame_list:
        if out and out[-1][0].symbol == trade.symbol and out[-1][0].time_ms == trade.time_ms:
            out[-1].append(trade)
        else:
            out.append([trade])
    return out


@dataclass
class Capture:
    bursts: list[list[Recorded]]
    seconds: float  # summed over the recordings, each from its first to its last trade
    symbol_seconds: float  # each recording's span times the symbols it holds

    @property
    def trades(self) -> list[Recorded]:
        return [t for b in self.bursts for t in b]


def capture(fixtures: Path, venue: str) -> Capture:
    read, paths = CAPTURES[venue]
    found = Capture([], 0.0, 0.0)
    for relative in paths:
        frame_list = list(frames(fixtures / relative, read))
        times = [t.time_ms for f in frame_list for t in f]
        span = (max(times) - min(times)) / 1000
        symbols = {t.symbol for f in frame_list for t in f}
        found.bursts += bursts(frame_list, one_per_frame=venue == "binance")
        found.seconds += span
        found.symbol_seconds += span * len(symbols)
    return found


def _round(x: float) -> float:
    return float(f"{x:.{SIGNIFICANT_DIGITS}g}")


def venue_fit(venue: str, own: Capture, pooled: Capture) -> VenueFit:
    shapes = own if len(own.trades) >= MIN_TRADES else pooled
    trades = shapes.trades
    return VenueFit(
        trades_per_s_per_symbol=_round(len(own.trades) / own.symbol_seconds),
        burst_sizes=dict(sorted(Counter(len(b) for b in shapes.bursts).items())),
        log_notional_quantiles=[_round(q) for q in quantile_table([math.log(t.price * t.size) for t in trades])],
        taker_buy_fraction=_round(sum(t.taker_buy for t in trades) / len(trades)),
        fitted_from=list(CAPTURES[venue][1]) if shapes is own else [],
    )


def gap_shape(timing: Capture) -> list[float]:
    """Gaps between successive bursts of each symbol, over their mean."""
    by_symbol: dict[str, list[float]] = {}
    for burst in timing.bursts:
        by_symbol.setdefault(burst[0].symbol, []).append(burst[0].time_ms)
    gaps = [b - a for times in by_symbol.values() for a, b in itertools.pairwise(times)]
    mean = sum(gaps) / len(gaps)
    return [_round(q) for q in quantile_table([g / mean for g in gaps])]


def price_steps(timing: Capture) -> tuple[float, float]:
    """Share of trades at the previous trade's price, and the standard deviation of the other log steps."""
    last: dict[str, float] = {}
    steps = []
    for trade in timing.trades:
        if trade.symbol in last:
            steps.append(math.log(trade.price / last[trade.symbol]))
        last[trade.symbol] = trade.price
    moves = [s for s in steps if s != 0]
    sd = math.sqrt(sum(s * s for s in moves) / len(moves))
    return _round(1 - len(moves) / len(steps)), _round(sd)


def zipf_exponent(timing: Capture) -> float:
    """Exponent s of weights 1/rank^s that gives the two most active symbols' recorded trade counts."""
    first, second = (n for _, n in Counter(t.symbol for t in timing.trades).most_common(2))
    return _round(math.log(first / second) / math.log(2))


def fit(fixtures: Path = FIXTURES) -> Fit:
    captures = {venue: capture(fixtures, venue) for venue in CAPTURES}
    pooled = Capture([b for c in captures.values() for b in c.bursts], 0.0, 0.0)
    timing = captures[TIMING_VENUE]
    unchanged, step_sd = price_steps(timing)
    return Fit(
        symbol_zipf_exponent=zipf_exponent(timing),
        gap_shape_quantiles=gap_shape(timing),
        price_unchanged_fraction=unchanged,
        price_log_step_sd=step_sd,
        venues={venue: venue_fit(venue, c, pooled) for venue, c in captures.items()},
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fixtures", type=Path, default=FIXTURES)
    parser.add_argument("--out", type=Path, default=FIT_PATH)
    args = parser.parse_args()
    args.out.write_text(json.dumps(fit(args.fixtures).to_json(), indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
