"""The results file's headline keys and the targets they are held to."""

from __future__ import annotations

from typing import Any

from bench.results import with_targets


def _window(silver_p99: float | None, gold_p99: float | None) -> dict[str, Any]:
    return {"silver_freshness_s": {"p99": silver_p99}, "gold_freshness_s": {"p99": gold_p99}}


def test_each_target_is_judged_on_its_own_figure_and_unmeasured_ones_are_not_judged() -> None:
    out = with_targets({
        "backfill_trades_per_s": 51_000.0,
        "backfill": {"median": {"trades_per_cpu_s": 24_000.0}},
        "pipeline_to_floor_ratio": 0.3,
        "live": {"rates": {"500": _window(9.0, 15.5), "5000": _window(None, None)}},
        "stack_peak_rss_gib": 3.0,
    })  # fmt: skip
    met = {key: target["met"] for key, target in out["targets"].items()}
    assert met == {
        "backfill_trades_per_s": True,
        "backfill_trades_per_cpu_s": False,
        "pipeline_to_floor_ratio": True,
        "silver_freshness_p99_s": True,
        "gold_freshness_p99_s": False,
        "silver_freshness_p99_s_at_high_rate": None,
        "stack_peak_rss_gib": True,
    }
    assert out["gold_freshness_p99_s"] == 15.5 and out["backfill_trades_per_cpu_s"] == 24_000.0
