import xml.etree.ElementTree as ET
from datetime import datetime
from decimal import Decimal

import pytest

from cryptolake.chart import DOWN, UP, candlestick_svg

SVG = "{http://www.w3.org/2000/svg}"


def _bar(minute: int, o: str, h: str, low: str, c: str, vwap: float) -> dict[str, object]:
    return {"bar_start": datetime(2024, 8, 8, 23, minute), "open": Decimal(o), "high": Decimal(h), "low": Decimal(low),
            "close": Decimal(c), "volume": Decimal(1), "vwap": vwap, "trades": 3}  # fmt: skip


def test_one_candle_per_bar_coloured_by_direction_with_the_vwap_line() -> None:
    bars = [_bar(1, "100", "110", "95", "105", 103.0), _bar(2, "105", "106", "90", "92", 97.5)]
    svg = ET.fromstring(candlestick_svg(bars, "BTC-USDT 1m"))
    rects = svg.findall(f"{SVG}rect")
    assert [r.get("fill") for r in rects] == [UP, DOWN]
    wicks = svg.findall(f"{SVG}line")
    # The highest high is at the top margin and the lowest low at the bottom one.
    assert float(wicks[0].get("y1", "")) == 60.0 and float(wicks[1].get("y2", "")) == 420.0
    (vwap,) = svg.findall(f"{SVG}polyline")
    points = [tuple(map(float, p.split(","))) for p in vwap.get("points", "").split()]
    assert len(points) == 2 and points[0][1] < points[1][1]  # the vwap fell, so its line goes down the page


def test_no_bars_is_an_error() -> None:
    with pytest.raises(ValueError, match="no bars"):
        candlestick_svg([], "empty")
