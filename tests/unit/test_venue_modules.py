"""Each venue's module agrees with the tests' reading of the venue (tests/reference.py): the frames it writes and its
sample frame are the trades they say, to the ingestor's parser as to the reference's."""

from __future__ import annotations

from decimal import Decimal

import pytest

from core.venues import LAKE_VENUES, FrameKind, LakeVenue, TradeText
from tests import reference

TRADES = [TradeText(101, "61837.63", "0.02000000", True), TradeText(102, "61837.10", "1.50000000", False)]
TIME_US = 1_723_161_255_342_000


def _sample(venue: type[LakeVenue]) -> str:
    """The trade frame of the class docstring: the indented block after its ``::``."""
    block = (venue.__doc__ or "").partition("::\n")[2].split("\n\n")[0]
    return "".join(line.strip() for line in block.splitlines())


@pytest.mark.parametrize("name", sorted(LAKE_VENUES))
def test_written_frames_read_back_as_the_trades_written(name: str) -> None:
    venue = LAKE_VENUES[name]
    frames = venue.render("BTC-USDT", TRADES, TIME_US)
    read = [t for frame in frames for t in reference.trades_of(name, frame, "BTC-USDT") or []]
    assert [(t.symbol, t.trade_id, t.price, t.size, t.side, t.time_us) for t in read] == [
        ("BTC-USDT", str(t.trade_id), Decimal(t.price), Decimal(t.size), "buy" if t.taker_buy else "sell", TIME_US)
        for t in TRADES
    ]
    assert {venue(["BTC-USDT"]).classify(frame) for frame in frames} == {(FrameKind.TRADE, "BTC-USDT")}


@pytest.mark.parametrize("name", sorted(LAKE_VENUES))
def test_the_sample_frame_is_a_trade_to_both_readings(name: str) -> None:
    venue = LAKE_VENUES[name]
    sample = _sample(venue)
    parsed = venue(()).parse(sample)
    assert parsed.kind is FrameKind.TRADE
    assert len(reference.trades_of(name, sample, "BTC-USDT") or []) == len(parsed.trades)
