"""Soak: the whole pipeline at an accelerated trigger under a steady small live load, for many micro-batches.

It shows what grows with the number of batches rather than with the data: batch durations (a log to replay, a state
store to load), objects per table (small files), the tables' transaction logs and the queries' checkpoints, the
driver's heap after a full GC. It stops once the slowest layer has run ``batches`` micro-batches, or after
``limit_s``. A layer's count is that of its busiest query: gold's rollups run a batch only when 1m bars close, about
once a minute, and would never get there.

Measured per query, from the layers' batch log lines: each batch's duration by batch number. Every
``SAMPLE_EVERY_BATCHES`` batches of the slowest layer, and at least every ``SAMPLE_EVERY_S``: the driver JVM's heap
after a full GC (``jcmd GC.run``, then ``GC.heap_info``), and from a listing of the bucket, the objects and bytes
under each table's prefix, under its transaction log (``_spark_metadata/`` for the file sink, ``_delta_log/`` for
Delta) and under each query's checkpoint. Nothing here reads the tables: it works whatever their format.
"""

from __future__ import annotations

import os
import re
import subprocess
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

from bench import batchlog
from bench.produce import Pacer
from bench.stack import Stack, Tuning, layer_pids, pipeline
from bench.stats import median
from bench.workload import Workload
from core.layers import LAYERS
from core.settings import Settings, env_name
from cryptolake.local.minio import s3_client
from cryptolake.local.paths import LocalPaths
from cryptolake.runner import Pipeline

TRIGGER = "200 milliseconds"  # unless the run sets trigger_interval: 15 times the default, batches come fast
RATE = 300  # trades/s: a steady small load, so that batch durations follow the state kept, not the input
SAMPLE_EVERY_BATCHES = 100
SAMPLE_EVERY_S = 60.0
WARM_UP_LIMIT_S = 900.0  # a busy machine takes minutes to its first batch of every layer (Delta creates the tables)
POLL_S = 1.0
JCMD_TIMEOUT_S = 120.0
# The summary compares the median batch of the first WINDOW after the first WARM_UP with that of the last WINDOW;
# a query with fewer than LONG_RUN batches is compared on the first and last SHORT_SHARE instead, after as many.
WARM_UP = 100
WINDOW = 1_000
LONG_RUN = 2_000
SHORT_SHARE = 0.1
LOG_DIRS = ("_spark_metadata", "_delta_log")  # a table's transaction log: the file sink's, or Delta's
TABLES = tuple(table for layer in LAYERS.values() for table in layer.tables)
QUERIES = tuple(query for layer in LAYERS.values() for query in layer.queries)
HEAP_UNITS = {"K": 2**10, "M": 2**20, "G": 2**30}


class SoakError(RuntimeError):
    pass


def compare(durations: Sequence[float]) -> dict[str, Any]:
    """Median batch duration early and late in a query's batches (in batch order), and their ratio."""
    count = len(durations)
    if count >= LONG_RUN:
        skip, size = WARM_UP, WINDOW
        window = f"first {WINDOW:,} batches after the first {WARM_UP:,}, and last {WINDOW:,}"
    else:
        skip = size = int(count * SHORT_SHARE)
        window = f"short run (< {LONG_RUN:,} batches): first 10 % after the first 10 %, and last 10 % ({size:,})"
    first = median(durations[skip : skip + size]) if size else None
    last = median(durations[-size:]) if size else None
    return {
        "batches": count,
        "window": window,
        "first_median_s": None if first is None else round(first, 3),
        "last_median_s": None if last is None else round(last, 3),
        "ratio": round(last / first, 3) if first and last is not None else None,
    }


def layer_batches(counts: dict[str, int]) -> dict[str, int]:
    """Each layer's batches so far: its busiest query's."""
    return {name: max((counts.get(q, 0) for q in layer.queries), default=0) for name, layer in LAYERS.items()}


def heap_used_bytes(heap_info: str) -> int:
    """The Java heap in use, from ``jcmd <pid> GC.heap_info``: the sum over its generations (G1 has one line,
    serial and parallel collectors one per generation), Metaspace and class space left out."""
    heap = heap_info.split("Metaspace", 1)[0]
    used = re.findall(r"\bused (\d+)([KMG])\b", heap)
    if not used:
        raise ValueError(f"no heap figure in GC.heap_info output: {heap_info[:200]!r}")
    return sum(int(number) * HEAP_UNITS[unit] for number, unit in used)


def list_objects(client: Any, bucket: str) -> list[tuple[str, int]]:
    """Every object of ``bucket``, as (key, size), from an S3 client's listing."""
    out = []
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        out += [(entry["Key"], entry["Size"]) for entry in page.get("Contents", [])]
    return out


def prefix_sizes(
    objects: Iterable[tuple[str, int]], tables: Iterable[str], queries: Iterable[str]
) -> dict[str, dict[str, dict[str, int]]]:
    """Objects and bytes under each table's prefix and its transaction log's, and under each query's checkpoint."""
    tables_out = {t: {"objects": 0, "bytes": 0, "log_objects": 0, "log_bytes": 0} for t in tables}
    checkpoints = {q: {"objects": 0, "bytes": 0} for q in queries}
    prefixes = [(f"{t}/", tables_out[t]) for t in tables_out]
    checkpoint_prefixes = [(f"{Settings.checkpoint_key(q)}/", checkpoints[q]) for q in checkpoints]
    for key, size in objects:
        for prefix, figures in prefixes:
            if key.startswith(prefix):
                figures["objects"] += 1
                figures["bytes"] += size
                if key[len(prefix) :].split("/", 1)[0] in LOG_DIRS:
                    figures["log_objects"] += 1
                    figures["log_bytes"] += size
        for prefix, figures in checkpoint_prefixes:
            if key.startswith(prefix):
                figures["objects"] += 1
                figures["bytes"] += size
    return {"tables": tables_out, "checkpoints": checkpoints}


def driver_jvms(running: Pipeline) -> dict[str, int]:
    """The Spark driver JVM under each layer process (PySpark starts it as a child)."""
    found = {}
    for name, pid in layer_pids(running).items():
        try:
            jvms = [p.pid for p in psutil.Process(pid).children(recursive=True) if p.name() == "java"]
        except psutil.Error:
            continue  # exited: restarted by the next poll
        if jvms:
            found[name] = jvms[0]
    return found


def heap_after_gc(pid: int) -> int | None:
    """Bytes of heap in use right after a full GC of JVM ``pid``; None if it could not be read (the JVM exited)."""
    try:
        jcmd = str(Path(psutil.Process(pid).exe()).with_name("jcmd"))  # the JVM's own: attach needs a match
        for command in ("GC.run", "GC.heap_info"):
            done = subprocess.run(
                [jcmd, str(pid), command], capture_output=True, text=True, timeout=JCMD_TIMEOUT_S, check=True
            )
        return heap_used_bytes(done.stdout)
    except (psutil.Error, OSError, subprocess.SubprocessError, ValueError):
        return None


@dataclass
class Soak:
    """What a soak has seen so far: each query's batch durations by batch number, and the samples."""

    durations: dict[str, dict[int, float]] = field(default_factory=dict)
    samples: list[dict[str, Any]] = field(default_factory=list)

    def add(self, batches: Iterable[batchlog.Batch]) -> None:
        for b in batches:
            self.durations.setdefault(b.query, {})[b.batch] = b.duration_s  # a batch run again: its last run

    def counts(self) -> dict[str, int]:
        return {query: len(by_batch) for query, by_batch in self.durations.items()}

    def ordered(self, query: str) -> list[float]:
        by_batch = self.durations.get(query, {})
        return [by_batch[b] for b in sorted(by_batch)]

    def report(self) -> dict[str, Any]:
        final = self.samples[-1] if self.samples else None
        heaps = [s["heap_after_gc_mib"] for s in self.samples if s["heap_after_gc_mib"]]
        return {
            "batches": self.counts(),
            "layer_batches": layer_batches(self.counts()),
            "summary": {
                "queries": {query: compare(self.ordered(query)) for query in sorted(self.durations)},
                "final_objects": None if final is None else {t: f["objects"] for t, f in final["tables"].items()},
                "final_log_bytes": None if final is None else {t: f["log_bytes"] for t, f in final["tables"].items()},
                "final_checkpoint_bytes": None
                if final is None
                else {q: f["bytes"] for q, f in final["checkpoints"].items()},
                "heap_after_gc_mib": {"first": heaps[0], "last": heaps[-1]} if heaps else None,
            },
            "samples": self.samples,
            # By batch number from 0, in whole milliseconds as Spark gives them; null for a batch with no line.
            "duration_ms": {
                query: [round(by_batch[b] * 1000) if b in by_batch else None for b in range(max(by_batch) + 1)]
                for query, by_batch in sorted(self.durations.items())
            },
        }


def _sample(soak: Soak, running: Pipeline, client: Any, settings: Settings, started: float) -> dict[str, Any]:
    heaps = {name: heap_after_gc(pid) for name, pid in driver_jvms(running).items()}
    sizes = prefix_sizes(list_objects(client, settings.lake_bucket), TABLES, QUERIES)
    return {
        "at_s": round(time.time() - started, 1),
        "layer_batches": layer_batches(soak.counts()),
        "batches": soak.counts(),
        "heap_after_gc_mib": {name: None if b is None else round(b / 2**20, 1) for name, b in heaps.items()},
        **sizes,
    }


def trigger(tuning: Tuning, settings: Settings) -> str:
    """The soak's trigger: the run's own if it sets one (``--set`` or its environment variable), else ``TRIGGER``."""
    given = "trigger_interval" in tuning.settings or env_name("trigger_interval") in os.environ
    return settings.trigger_interval if given else TRIGGER


def run(
    stack: Stack,
    tuning: Tuning,
    workload: Workload,
    batches: int,
    limit_s: float,
    on_pipeline: Callable[[Pipeline | None], None],
) -> dict[str, Any]:
    settings = stack.run_settings("soak")
    settings = settings.with_(trigger_interval=trigger(tuning, settings))
    tail = batchlog.Tail(LocalPaths.of(settings).logs)
    client = s3_client(settings)
    soak = Soak()
    with pipeline(settings, tuning) as running:
        on_pipeline(running)
        pacer = Pacer(settings, workload, RATE)
        pacer.start()
        started = time.time()
        next_batches, next_at = SAMPLE_EVERY_BATCHES, started + SAMPLE_EVERY_S
        try:
            while True:
                time.sleep(POLL_S)  # first: a layer checked in its first instants can pass for dead
                running.restart_failed()
                if pacer.error is not None:
                    raise SoakError(f"the producer failed: {pacer.error!r}") from pacer.error
                soak.add(tail.read())
                slowest = min(layer_batches(soak.counts()).values())
                now = time.time()
                seconds = now - started
                if slowest == 0 and seconds > WARM_UP_LIMIT_S:
                    raise SoakError(f"a layer ran no batch within {WARM_UP_LIMIT_S:.0f}s of the start")
                stopped_by = "batches" if slowest >= batches else "time limit" if seconds >= limit_s else None
                if stopped_by or slowest >= next_batches or now >= next_at:
                    soak.samples.append(_sample(soak, running, client, settings, started))
                    next_batches = (slowest // SAMPLE_EVERY_BATCHES + 1) * SAMPLE_EVERY_BATCHES
                    next_at = time.time() + SAMPLE_EVERY_S
                if stopped_by:
                    break
        finally:
            pacer.stop()
        restarts = sum(running.restarts.values())
    on_pipeline(None)
    return {
        "trigger_interval": settings.trigger_interval,
        "rate_trades_per_s": RATE,
        "target_batches": batches,
        "limit_s": limit_s,
        "stopped_by": stopped_by,
        "seconds": round(seconds, 1),
        "restarts": restarts,
        "sent_trades": pacer.stats.trades,
        "sample_every": {"batches": SAMPLE_EVERY_BATCHES, "seconds": SAMPLE_EVERY_S},
        **soak.report(),
    }
