"""The results as one PNG: backfill throughput, live freshness and peak memory, each against its target."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bench.png import Canvas, Color

WIDTH = 1000
LABEL_W = 300
BAR_W = 420
ROW_H = 26
TITLE_H = 40
MARGIN = 20
BAR: Color = (70, 110, 170)
FLOOR: Color = (160, 160, 160)
TOTAL: Color = (200, 120, 50)
TARGET: Color = (200, 30, 30)
GREY: Color = (90, 90, 90)


@dataclass(frozen=True)
class Row:
    label: str
    value: float | None  # None: not measured, or not reached (drawn as n/a)
    text: str
    color: Color = BAR


@dataclass(frozen=True)
class Panel:
    title: str
    rows: list[Row]
    target: float
    target_label: str

    @property
    def height(self) -> int:
        return TITLE_H + ROW_H * len(self.rows) + 30


def _fmt(value: float | None, digits: int = 1) -> str:
    return "n/a" if value is None else f"{value:,.{digits}f}"


def panels(results: dict[str, Any]) -> list[Panel]:
    backfill = results["backfill"]["median"]
    layers = backfill["layers"]
    floor = results.get("floor_trades_per_s")
    throughput = [
        Row(layer.upper(), layers.get(layer), _fmt(layers.get(layer), 0)) for layer in ("bronze", "silver", "gold")
    ]
    throughput.append(
        Row("END TO END", results["backfill_trades_per_s"], _fmt(results["backfill_trades_per_s"], 0), TOTAL)
    )
    throughput.append(Row("FLOOR", floor, _fmt(floor, 0), FLOOR))
    freshness = []
    for rate, window in (results.get("live") or {}).get("rates", {}).items():
        for layer in ("silver", "gold"):
            s = window[f"{layer}_freshness_s"]
            freshness.append(
                Row(f"{layer.upper()} AT {rate}/S", s["p99"], f"P99 {_fmt(s['p99'])}  P50 {_fmt(s['p50'])}")
            )
    memory = results["memory"]
    rss = [
        Row(name.upper(), gib, _fmt(gib, 2), BAR if name in memory["in_stack"] else FLOOR)
        for name, gib in memory["peak_rss_gib"].items()
    ]
    rss.append(Row("STACK TOTAL", results["stack_peak_rss_gib"], _fmt(results["stack_peak_rss_gib"], 2), TOTAL))
    return [
        Panel(
            f"BACKFILL, TRADES/S (MEDIAN OF {backfill['runs']}; FLOOR: KAFKA TO PARQUET, NO SPARK)",
            throughput,
            50_000,
            "TARGET 50,000",
        ),
        Panel("LIVE FRESHNESS, SECONDS", freshness, 10, "TARGET: SILVER P99 10 S AT 500/S"),
        Panel("PEAK RSS, GIB (WITH CHILD JVMS), GREY: NOT IN THE STACK", rss, 4, "TARGET: STACK 4 GIB"),
    ]


def _draw(canvas: Canvas, panel: Panel, top: int) -> None:
    canvas.text(MARGIN, top + 10, panel.title, scale=2)
    values = [r.value for r in panel.rows if r.value is not None]
    scale = BAR_W / (max([*values, panel.target]) * 1.1)
    x0 = MARGIN + LABEL_W
    y = top + TITLE_H
    for row in panel.rows:
        canvas.text(MARGIN, y + 6, row.label, GREY)
        width = 0 if row.value is None else max(1, round(row.value * scale))
        canvas.rect(x0, y + 3, width, ROW_H - 6, row.color)
        canvas.text(x0 + width + 6, y + 6, row.text, scale=2)
        y += ROW_H
    tx = x0 + round(panel.target * scale)
    for dash in range(top + TITLE_H, y, 6):  # a dashed line at the target
        canvas.rect(tx, dash, 2, 3, TARGET)
    canvas.text(max(x0, tx - Canvas.text_width(panel.target_label, 1) // 2), y + 6, panel.target_label, TARGET, 1)


def render(results: dict[str, Any]) -> bytes:
    machine, load = results["machine"], results["load_average"]
    footer = (
        f"{results['date']}  {machine['cores']} CORES, {machine['ram_gib']} GIB, {machine['cpu_model']}, "
        f"LOAD AVERAGE {load['start'][0]} AT START, {load['end'][0]} AT END  "
        f"{results['workload']['trades']:,} TRADES"
    )
    parts = panels(results)
    canvas = Canvas(WIDTH, sum(p.height for p in parts) + 3 * MARGIN)
    top = MARGIN
    for panel in parts:
        _draw(canvas, panel, top)
        top += panel.height
    canvas.text(MARGIN, top + 4, footer, GREY, scale=1)
    return canvas.png()
