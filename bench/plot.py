"""The results as one PNG: backfill throughput, live freshness and peak memory, each against its target."""

from __future__ import annotations

import io
import math
from dataclasses import dataclass
from typing import Any

from matplotlib.artist import Artist
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import FuncFormatter

from bench.stats import percentile, rolling_median
from core.layers import LAYERS

WIDTH_INCHES = 12
DPI = 100
BAR = "#466eaa"
FLOOR = "#a0a0a0"
TOTAL = "#c87832"
TARGET = "#c81e1e"


@dataclass(frozen=True)
class Row:
    label: str
    value: float | None  # None: not measured, or not reached (drawn as n/a)
    text: str
    color: str = BAR


@dataclass(frozen=True)
class Panel:
    title: str
    unit: str  # the x axis
    rows: list[Row]
    target: float
    target_label: str
    legend: dict[str, str]  # what each bar colour means


def _fmt(value: float | None, digits: int = 1) -> str:
    return "n/a" if value is None else f"{value:,.{digits}f}"


def panels(results: dict[str, Any]) -> list[Panel]:
    backfill = results["backfill"]["median"]
    layers = backfill["layers"]
    floor = results.get("floor_trades_per_s")
    throughput = [
        Row(layer.capitalize(), layers.get(layer), _fmt(layers.get(layer), 0)) for layer in ("bronze", "silver", "gold")
    ]
    throughput.append(
        Row("End to end", results["backfill_trades_per_s"], _fmt(results["backfill_trades_per_s"], 0), TOTAL)
    )
    throughput.append(Row("Floor", floor, _fmt(floor, 0), FLOOR))
    freshness = []
    for rate, window in (results.get("live") or {}).get("rates", {}).items():
        for layer in ("silver", "gold"):
            s = window[f"{layer}_freshness_s"]
            freshness.append(
                Row(f"{layer.capitalize()} at {rate}/s", s["p99"], f"p99 {_fmt(s['p99'])}  p50 {_fmt(s['p50'])}")
            )
    memory = results["memory"]
    rss = [
        Row(name, gib, _fmt(gib, 2), BAR if name in memory["in_stack"] else FLOOR)
        for name, gib in memory["peak_rss_gib"].items()
    ]
    rss.append(Row("Stack total", results["stack_peak_rss_gib"], _fmt(results["stack_peak_rss_gib"], 2), TOTAL))
    return [
        Panel(
            f"Backfill throughput, median of {backfill['runs']} runs",
            "trades per second",
            throughput,
            50_000,
            "target: 50,000 trades/s",
            {BAR: "one layer", TOTAL: "the three layers", FLOOR: "floor: Kafka to Parquet, no Spark"},
        ),
        Panel(
            "Live freshness: from a trade to its row",
            "seconds (bar: p99)",
            freshness,
            10,
            "target: silver p99 10 s (gold 1m: 15 s at 500/s)",
            {BAR: "p99"},
        ),
        Panel(
            "Peak resident memory, child JVMs included",
            "GiB",
            rss,
            3,
            "target: stack 3 GiB",
            {BAR: "in the stack", FLOOR: "not in the stack", TOTAL: "the stack at its peak"},
        ),
    ]


def _draw(axes: Axes, panel: Panel) -> None:
    positions = range(len(panel.rows))
    values = [row.value or 0.0 for row in panel.rows]
    bars = axes.barh(positions, values, color=[row.color for row in panel.rows])
    axes.bar_label(bars, labels=[row.text for row in panel.rows], padding=4)
    axes.set_yticks(positions, [row.label for row in panel.rows])
    axes.invert_yaxis()  # first row on top
    axes.axvline(panel.target, color=TARGET, linestyle="--")
    axes.set_xlim(0, max([*values, panel.target]) * 1.3)  # room for the value beside the longest bar
    axes.set_title(panel.title, loc="left")
    axes.set_xlabel(panel.unit)
    handles: list[Artist] = [Patch(color=color, label=meaning) for color, meaning in panel.legend.items()]
    handles.append(Line2D([], [], color=TARGET, linestyle="--", label=panel.target_label))
    axes.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1), fontsize="small")  # beside the bars
    axes.xaxis.set_major_formatter(FuncFormatter(lambda x, _: f"{x:,g}"))


def render(results: dict[str, Any]) -> bytes:
    machine, load = results["machine"], results["load_average"]
    footer = (
        f"{results['date']}; {machine['cores']} cores, {machine['ram_gib']} GiB, {machine['cpu_model']}; "
        f"load average {load['start'][0]} at start, {load['end'][0]} at end; {results['workload']['trades']:,} trades"
    )
    parts = panels(results)
    heights = [len(panel.rows) + 2 for panel in parts]  # a row per bar, and room for title and axis
    figure = Figure(figsize=(WIDTH_INCHES, 0.4 * sum(heights) + 0.5), dpi=DPI, layout="constrained")
    for axes, panel in zip(figure.subplots(len(parts), 1, height_ratios=heights), parts, strict=True):
        _draw(axes, panel)
    figure.supxlabel(footer, fontsize="small", color="dimgray")
    out = io.BytesIO()
    figure.savefig(out, format="png")
    return out.getvalue()


ROLLING = 100  # batches in the rolling median of the soak's durations


def _legend(axes: Axes, title: str, unit: str) -> None:
    axes.set_title(title, loc="left")
    axes.set_ylabel(unit)
    axes.legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize="small")  # beside the lines


def _durations(axes: Axes, layer: str, by_query: dict[str, list[int | None]]) -> None:
    """Each batch as a faint dot, and the rolling median as a line; the y axis clipped above the 99th percentile."""
    every: list[float] = []
    for query, durations_ms in by_query.items():
        batches = [b for b, ms in enumerate(durations_ms) if ms is not None]
        seconds = [ms / 1000 for ms in durations_ms if ms is not None]
        (line,) = axes.plot(batches, rolling_median(seconds, ROLLING), label=f"{query}, median of {ROLLING}")
        axes.scatter(batches, seconds, s=2, alpha=0.3, color=line.get_color())
        every += seconds
    if every:
        axes.set_ylim(0, percentile(every, 99) * 1.5)  # the odd slow batch would squash the medians flat
    _legend(axes, f"{layer.capitalize()}: batch duration by batch number", "seconds")


def _sampled(axes: Axes, x: list[int], series: dict[str, list[float | None]], title: str, unit: str) -> None:
    for name, values in series.items():
        axes.plot(x, [math.nan if v is None else v for v in values], marker=".", label=name)  # None: not read
    _legend(axes, title, unit)


def render_soak(results: dict[str, Any]) -> bytes:
    """Per query, batch duration by batch number; per table, objects, log bytes and checkpoint bytes by batch number
    (of the slowest layer when sampled); the driver's heap after a full GC."""
    soak = results["soak"]
    samples = soak["samples"]
    x = [min(s["layer_batches"].values()) for s in samples]
    tables = list(samples[0]["tables"]) if samples else []
    queries = list(samples[0]["checkpoints"]) if samples else []
    jvms = list(samples[0]["heap_after_gc_mib"]) if samples else []
    sampled = {
        ("Objects per table", "objects", False): {t: [s["tables"][t]["objects"] for s in samples] for t in tables},
        ("Transaction log per table", "MiB", True): {
            t: [s["tables"][t]["log_bytes"] / 2**20 for s in samples] for t in tables
        },
        ("Checkpoint per query", "MiB", True): {
            q: [s["checkpoints"][q]["bytes"] / 2**20 for s in samples] for q in queries
        },
        ("Driver JVM heap after a full GC", "MiB", False): {
            name: [s["heap_after_gc_mib"].get(name) for s in samples] for name in jvms
        },
    }
    figure = Figure(figsize=(WIDTH_INCHES, 3 * (len(LAYERS) + len(sampled))), dpi=DPI, layout="constrained")
    axes = figure.subplots(len(LAYERS) + len(sampled), 1)
    for ax, (name, layer) in zip(axes, LAYERS.items(), strict=False):
        _durations(ax, name, {q: soak["duration_ms"][q] for q in layer.queries if q in soak["duration_ms"]})
    for ax, ((title, unit, log_scale), series) in zip(axes[len(LAYERS) :], sampled.items(), strict=True):
        _sampled(ax, x, series, title, unit)
        if log_scale:
            ax.set_yscale("log")  # sizes from bytes to megabytes side by side
    axes[-1].set_xlabel("batch number (sampled figures: the slowest layer's batches when sampled)")
    machine, load = results["machine"], results["load_average"]
    figure.supxlabel(
        f"{results['date']}; trigger {soak['trigger_interval']}, {soak['rate_trades_per_s']} trades/s; "
        f"{machine['cores']} cores, {machine['cpu_model']}; load average {load['start'][0]} at start, "
        f"{load['end'][0]} at end",
        fontsize="small",
        color="dimgray",
    )
    out = io.BytesIO()
    figure.savefig(out, format="png")
    return out.getvalue()
