"""The results file: every run's figures, their medians, the headline keys and the targets they are held to."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import backfill, floor
from bench.produce import Loaded
from bench.stats import median
from bench.workload import BASES, Workload

TARGETS = {
    "backfill_trades_per_s": (50_000, "at least"),
    "backfill_trades_per_cpu_s": (25_000, "at least"),
    "pipeline_to_floor_ratio": (0.25, "at least"),
    "silver_freshness_p99_s": (10, "at most"),
    "gold_freshness_p99_s": (15, "at most"),
    "silver_freshness_p99_s_at_high_rate": (10, "at most"),
    "stack_peak_rss_gib": (3, "at most"),
}
LIVE_TARGET_RATE = "500"  # the rate the freshness targets, and the headline freshness keys, are for
LIVE_HIGH_RATE = "5000"  # silver's freshness target holds here too


@dataclass(frozen=True)
class Measured:
    loaded: Loaded | None
    workload: Workload
    backfills: list[backfill.Run]
    floors: list[floor.Floor]
    live: dict[str, Any] | None
    memory: dict[str, Any]
    soak: dict[str, Any] | None = None
    storage: dict[str, Any] | None = None


def _median_or_none(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return round(median(present), 1) if present else None


def backfill_summary(runs: list[backfill.Run]) -> dict[str, Any]:
    reports = [r.to_json() for r in runs]
    return {
        "runs": len(runs),
        "trades_per_s": _median_or_none([r["trades_per_s"] for r in reports]),
        "startup_s": _median_or_none([r["startup_s"] for r in reports]),
        "trades_per_cpu_s": _median_or_none([r["trades_per_cpu_s"] for r in reports]),
        "layers": {
            layer: _median_or_none([(r["layers"][layer] or {}).get("trades_per_s") for r in reports])
            for layer in ("bronze", "silver", "gold")
        },
        "layers_busy": {
            layer: _median_or_none([(r["layers"][layer] or {}).get("busy_trades_per_s") for r in reports])
            for layer in ("bronze", "silver", "gold")
        },
    }


def assemble(measured: Measured, header: dict[str, Any]) -> dict[str, Any]:
    loaded = measured.loaded
    out: dict[str, Any] = dict(header)
    out["workload"] = {
        "symbols": len(BASES),
        "venues": sorted(measured.workload.fit.venues),
        "native_trades_per_s": round(measured.workload.native_rate, 1),
        "trades": loaded.trades if loaded else 0,
    }
    if loaded is not None:
        out["workload"] |= {
            "records": loaded.records,
            "trades_per_record": round(loaded.trades_per_record, 3),
            "mib": round(loaded.bytes / 2**20, 1),
            "event_time_span_s": round((loaded.last_event_us - loaded.first_event_us) / 1e6, 1),
            "kafka_load_s": round(loaded.seconds, 1),
        }
    summary = backfill_summary(measured.backfills)
    out["backfill_trades_per_s"] = summary["trades_per_s"]
    out["backfill"] = {"median": summary, "runs": [r.to_json() for r in measured.backfills]}
    floor_records = _median_or_none([f.records_per_s for f in measured.floors])
    floor_trades = None if floor_records is None or loaded is None else round(floor_records * loaded.trades_per_record)
    out["floor_trades_per_s"] = floor_trades
    out["floor"] = {
        "records_per_s": floor_records,
        "runs": [{"records": f.records, "seconds": round(f.seconds, 3), "workers": f.workers} for f in measured.floors],
    }
    pipeline = out["backfill_trades_per_s"]
    out["pipeline_to_floor_ratio"] = round(pipeline / floor_trades, 3) if pipeline and floor_trades else None
    out["live"] = measured.live
    out["soak"] = measured.soak
    out["storage"] = measured.storage
    out["stack_peak_rss_gib"] = measured.memory["stack_peak_rss_gib"]
    out["memory"] = measured.memory
    return with_targets(out)


def with_targets(out: dict[str, Any]) -> dict[str, Any]:
    """``out`` with the headline keys the targets are held to, and each target and whether it was met."""
    rates = (out.get("live") or {}).get("rates", {})
    at_target, high = rates.get(LIVE_TARGET_RATE, {}), rates.get(LIVE_HIGH_RATE, {})
    out["backfill_trades_per_cpu_s"] = out["backfill"]["median"]["trades_per_cpu_s"]
    out["silver_freshness_p99_s"] = at_target.get("silver_freshness_s", {}).get("p99")
    out["gold_freshness_p99_s"] = at_target.get("gold_freshness_s", {}).get("p99")
    out["silver_freshness_p99_s_at_high_rate"] = high.get("silver_freshness_s", {}).get("p99")
    out["targets"] = {
        key: {"target": target, "kind": kind, "measured": out.get(key), "met": _met(out.get(key), target, kind)}
        for key, (target, kind) in TARGETS.items()
    }
    return out


def _met(value: float | None, target: float, kind: str) -> bool | None:
    if value is None:
        return None
    return value >= target if kind == "at least" else value <= target


def write(results: dict[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=1) + "\n")
