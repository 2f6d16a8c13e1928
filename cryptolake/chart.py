"""A candlestick chart of gold bars with the vwap line, as a self-contained HTML page (inline SVG, no script)."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from html import escape
from typing import Any

WIDTH, HEIGHT, MARGIN = 1000, 480, 60
UP, DOWN, VWAP = "#1a9850", "#d73027", "#4575b4"


def candlestick_svg(bars: Sequence[dict[str, Any]], title: str) -> str:
    """One candle per bar (body open-close, wick low-high), oldest on the left, and the vwap as a polyline."""
    if not bars:
        raise ValueError("no bars to draw")
    low = min(Decimal(b["low"]) for b in bars)
    high = max(Decimal(b["high"]) for b in bars)
    span = float(high - low) or 1.0
    step = (WIDTH - 2 * MARGIN) / len(bars)

    def y(price: Decimal | float) -> float:
        return MARGIN + (float(high) - float(price)) / span * (HEIGHT - 2 * MARGIN)

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}">',
        f'<text x="{MARGIN}" y="{MARGIN / 2:.0f}" font-family="sans-serif" font-size="16">{escape(title)}</text>',
        f'<text x="4" y="{y(high):.1f}" font-family="sans-serif" font-size="11">{high}</text>',
        f'<text x="4" y="{y(low):.1f}" font-family="sans-serif" font-size="11">{low}</text>',
    ]
    vwap_points = []
    for i, bar in enumerate(bars):
        centre = MARGIN + (i + 0.5) * step
        colour = UP if bar["close"] >= bar["open"] else DOWN
        top, bottom = y(max(bar["open"], bar["close"])), y(min(bar["open"], bar["close"]))
        parts.append(
            f'<line x1="{centre:.1f}" x2="{centre:.1f}" y1="{y(bar["high"]):.1f}" y2="{y(bar["low"]):.1f}" '
            f'stroke="{colour}"/>'
        )
        parts.append(
            f'<rect x="{centre - step * 0.35:.1f}" y="{top:.1f}" width="{step * 0.7:.1f}" '
            f'height="{max(bottom - top, 1):.1f}" fill="{colour}"><title>{escape(_tooltip(bar))}</title></rect>'
        )
        vwap_points.append(f"{centre:.1f},{y(bar['vwap']):.1f}")
    parts.append(f'<polyline points="{" ".join(vwap_points)}" fill="none" stroke="{VWAP}" stroke-width="1.5"/>')
    parts.append("</svg>")
    return "\n".join(parts)


def _tooltip(bar: dict[str, Any]) -> str:
    return (
        f"{bar['bar_start']:%Y-%m-%d %H:%M} O {bar['open']} H {bar['high']} L {bar['low']} C {bar['close']} "
        f"V {bar['volume']} vwap {bar['vwap']:.8g} n {bar['trades']}"
    )


def html_page(bars: Sequence[dict[str, Any]], title: str) -> str:
    return (
        f"<!DOCTYPE html>\n<html><head><meta charset='utf-8'><title>{escape(title)}</title></head>\n"
        f"<body>\n{candlestick_svg(bars, title)}\n<p style='font-family:sans-serif;color:{VWAP}'>vwap</p>\n"
        "</body></html>\n"
    )
