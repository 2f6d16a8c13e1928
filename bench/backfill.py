"""Backfill: the whole workload is in Kafka first; then the layers start on an empty lake and drain it.

All three layers run at once, as `cryptolake up` runs them. From their batch logs: each layer's drain runs from its
first batch with input to the end of the batch in which each of its queries had read everything (bronze and silver:
every record; each gold query: every trade). End to end runs from bronze's first batch to the last gold query's.
JVM start-up (process start to bronze's first batch) is reported apart and not counted in the rates.

Each layer process's CPU time (with its JVM), from its start to the drain's end, is reported too: on a machine shared
with other work, wall times stretch while CPU times hardly move.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import batchlog
from bench.processes import tree_cpu
from bench.produce import Loaded
from bench.stack import Stack, Tuning, layer_pids, pipeline
from core.layers import LAYERS
from cryptolake.local.paths import LocalPaths
from cryptolake.runner import Pipeline

POLL_S = 1.0


@dataclass(frozen=True)
class Run:
    """One backfill run's figures; ``drained`` False when the time limit came first."""

    drained: bool
    startup_s: float | None
    end_to_end_s: float | None
    layers: dict[str, batchlog.Drain | None]
    cpu_s: dict[str, float]  # by layer process (bronze, silver, gold; or the one "layers" process)
    restarts: int
    trades: int

    def trades_per_s(self, seconds: float | None) -> float | None:
        return None if not seconds else self.trades / seconds

    def to_json(self) -> dict[str, Any]:
        layers = {}
        for name, d in self.layers.items():
            layers[name] = None if d is None else {
                "drain_s": _round(d.seconds),
                "trades_per_s": _round(self.trades_per_s(d.seconds)),
                "busy_s": round(d.busy_s, 3),
                "busy_trades_per_s": _round(self.trades_per_s(d.busy_s)),
                "batches": d.batches,
            }  # fmt: skip
        return {
            "drained": self.drained,
            "startup_s": _round(self.startup_s),
            "end_to_end_s": _round(self.end_to_end_s),
            "trades_per_s": _round(self.trades_per_s(self.end_to_end_s)),
            "layers": layers,
            "cpu_s": {name: round(cpu, 1) for name, cpu in self.cpu_s.items()},
            "trades_per_cpu_s": _round(self.trades_per_s(sum(self.cpu_s.values()))),
            "restarts": self.restarts,
        }


def _round(x: float | None) -> float | None:
    return None if x is None else round(x, 3)


def measure(batches: list[batchlog.Batch], loaded: Loaded) -> dict[str, batchlog.Drain | None]:
    """Each layer's drain. Bronze and silver read every Kafka record; gold reads every trade from silver and writes
    every table's bars in the same batch."""
    return {
        layer: batchlog.drain(batches, LAYERS[layer].queries, rows)
        for layer, rows in (("bronze", loaded.records), ("silver", loaded.records), ("gold", loaded.trades))
    }


OnPipeline = Callable[[Pipeline | None], None]


def run(
    stack: Stack, tuning: Tuning, loaded: Loaded, topic: str, index: int, on_pipeline: OnPipeline, limit_s: float
) -> Run:
    """Drain ``topic`` (holding ``loaded``) into a fresh lake; ``on_pipeline`` is told the running pipeline."""
    settings = stack.run_settings(f"backfill-{index}", topic=topic)
    logs = LocalPaths.of(settings).logs
    with pipeline(settings, tuning) as running:
        on_pipeline(running)
        started = time.time()
        layers = _wait(running, logs, loaded, started + limit_s)
        cpu = tree_cpu(layer_pids(running))
        restarts = sum(running.restarts.values())
    on_pipeline(None)  # only now: until the layers are stopped, they count as layers
    bronze, gold = layers["bronze"], layers["gold"]
    end_to_end = None if bronze is None or gold is None or gold.end is None else gold.end - bronze.start
    return Run(
        drained=end_to_end is not None,
        startup_s=None if bronze is None else bronze.start - started,
        end_to_end_s=end_to_end,
        layers=layers,
        cpu_s=cpu,
        restarts=restarts,
        trades=loaded.trades,
    )


def _wait(running: Pipeline, logs: Path, loaded: Loaded, deadline: float) -> dict[str, batchlog.Drain | None]:
    while True:
        # Sleep first: a layer checked in its first instants can pass for dead (see the runner's restart_failed).
        time.sleep(POLL_S)
        running.restart_failed()
        layers = measure(batchlog.read(logs), loaded)
        if all(d is not None and d.end is not None for d in layers.values()) or time.time() > deadline:
            return layers
