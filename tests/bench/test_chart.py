"""The results chart: a row per figure, drawn as a PNG."""

from __future__ import annotations

import struct

from bench import plot


def png_size(png: bytes) -> tuple[int, int]:
    """Width and height from a PNG's header chunk."""
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and png[12:16] == b"IHDR"
    width, height = struct.unpack(">II", png[16:24])
    return width, height


RESULTS = {
    "date": "2026-11-21 10:00:00 UTC",
    "machine": {"cores": 2, "ram_gib": 23.5, "cpu_model": "AMD EPYC"},
    "load_average": {"start": [0.5, 0.4, 0.3], "end": [1.5, 0.6, 0.4]},
    "workload": {"trades": 100_000},
    "backfill": {"median": {"runs": 3, "layers": {"bronze": 90_000.0, "silver": 60_000.0, "gold": None}}},
    "backfill_trades_per_s": 40_000.0,
    "floor_trades_per_s": 300_000,
    "live": {
        "rates": {
            "500": {"silver_freshness_s": {"p50": 4.0, "p99": 8.0}, "gold_freshness_s": {"p50": 20.0, "p99": None}}
        }
    },
    "memory": {"peak_rss_gib": {"bronze": 1.1, "load generator": 0.1}, "in_stack": ["bronze"]},
    "stack_peak_rss_gib": 3.5,
}


def test_chart_has_a_row_per_figure_and_renders() -> None:
    panels = plot.panels(RESULTS)
    assert [len(p.rows) for p in panels] == [5, 2, 3]
    assert [p.target for p in panels] == [50_000, 10, 3]
    assert panels[2].rows[1].color == plot.FLOOR  # the load generator is not part of the stack
    assert [p.rows[0].label for p in panels] == ["Bronze", "Silver at 500/s", "bronze"]
    width, height = png_size(plot.render(RESULTS))
    assert width == plot.WIDTH_INCHES * plot.DPI and height > 300


def _sample(batches: int, objects: int, heap: float | None) -> dict[str, object]:
    return {
        "layer_batches": {"bronze": batches + 5, "silver": batches, "gold": batches + 1},
        "tables": {"bronze/trades": {"objects": objects, "log_bytes": 1_000 * batches}},
        "checkpoints": {"bronze": {"bytes": 50_000 * batches}},
        "heap_after_gc_mib": {"layers": heap},
    }


def test_soak_chart_renders_durations_and_samples_even_with_a_heap_not_read() -> None:
    soak = {
        "trigger_interval": "200 milliseconds",
        "rate_trades_per_s": 300,
        "duration_ms": {"bronze": [400, 300, None, 350] * 50, "silver": [900] * 150, "gold_5m": [100, 200]},
        "samples": [_sample(100, 40, 120.5), _sample(200, 80, None)],
    }
    width, height = png_size(plot.render_soak(RESULTS | {"soak": soak}))
    assert width == plot.WIDTH_INCHES * plot.DPI and height > 1_000
