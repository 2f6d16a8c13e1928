"""``python -m bench``: run the scenarios on a private local stack and write bench/results/<date>[-label].json + .png.

Quick run: ``python -m bench --trades 100000 --live-seconds 60 --runs 1``. Tuning: ``--set trigger_interval="2
seconds"`` (any setting, also read from its CRYPTOLAKE_* variable), ``--spark-conf KEY=VALUE`` (Spark conf no setting
spells), ``--jvm-per-layer``; give such a run a ``--label``.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import shlex
import signal
import sys
import time
from pathlib import Path
from types import FrameType
from typing import Any

from bench import backfill, floor, live, machine, plot, produce, results, soak, storage
from bench.processes import MemorySampler
from bench.stack import Stack, Tuning, bench_home, layer_pids
from bench.workload import Fit, Workload
from core.settings import Settings
from cryptolake.runner import Pipeline

RESULTS = Path(__file__).with_name("results")
SCENARIOS = ("backfill", "floor", "live", "soak", "storage")
# The soak runs for hours, and storage measures sizes, not speed: only when asked for.
DEFAULT_SCENARIOS = ("backfill", "floor", "live")
SELF = "load generator"  # this process: the producer and the floor's workers, not part of the stack
TUNED = ("trigger_interval", "max_offsets_per_trigger", "shuffle_partitions", "silver_watermark", "gold_watermark")


def _pair(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    return key.strip(), value.strip()


def _setting(text: str) -> tuple[str, str]:
    name, value = _pair(text)
    if name not in Settings.model_fields:
        raise argparse.ArgumentTypeError(f"{name!r} is no setting; see `cryptolake settings` (lower case, no prefix)")
    return name, value


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--trades", type=int, default=1_000_000, help="trades in the backfill (default 1,000,000)")
    parser.add_argument("--runs", type=int, default=3, help="backfill and floor runs; medians are reported")
    parser.add_argument("--live-seconds", type=float, default=180.0, help="seconds at each live rate")
    parser.add_argument("--rates", default="500,5000", help="live rates, trades/s, comma-separated")
    parser.add_argument(
        "--scenarios", default=",".join(DEFAULT_SCENARIOS), help=f"which of {','.join(SCENARIOS)} to run"
    )
    parser.add_argument("--soak-batches", type=int, default=10_000, help="the soak's batches of its slowest layer")
    parser.add_argument("--soak-minutes", type=float, default=240.0, help="the soak's time limit, if reached first")
    parser.add_argument("--storage-rate", type=float, default=300.0, help="trades/s of the storage scenario")
    parser.add_argument("--storage-seconds", type=float, default=600.0, help="seconds of load of the storage scenario")
    parser.add_argument("--set", type=_setting, action="append", default=[], metavar="SETTING=VALUE")
    parser.add_argument("--spark-conf", type=_pair, action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--jvm-per-layer", action="store_true", help="a Spark driver for each layer, not one for all")
    parser.add_argument("--label", default="", help="suffix of the results files, e.g. the variant tried")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out-dir", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    args.scenarios = [s.strip() for s in args.scenarios.split(",") if s.strip()]
    unknown = set(args.scenarios) - set(SCENARIOS)
    if unknown:
        parser.error(f"unknown scenarios {sorted(unknown)}; choose from {', '.join(SCENARIOS)}")
    args.rates = [float(r) for r in args.rates.split(",")]
    return args


def say(text: str) -> None:
    print(f"{time.strftime('%H:%M:%S')} {text}", file=sys.stderr, flush=True)


class Processes:
    """The processes to sample: the services, this process, and whichever pipeline runs now."""

    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self.running: Pipeline | None = None

    def set(self, running: Pipeline | None) -> None:
        self.running = running

    def roots(self) -> dict[str, int]:
        found = {**self.stack.pids(), SELF: os.getpid()}
        running = self.running
        if running is not None:
            found |= layer_pids(running)
        return found


def measure(args: argparse.Namespace, tuning: Tuning, stack: Stack, processes: Processes) -> results.Measured:
    workload = Workload(Fit.load(), seed=args.seed)
    loaded = None
    backfills: list[backfill.Run] = []
    floors: list[floor.Floor] = []
    if {"backfill", "floor"} & set(args.scenarios):
        settings = stack.run_settings("load")
        say(f"loading {args.trades:,} trades into Kafka")
        loaded = produce.load(settings, workload, args.trades)
        say(f"loaded {loaded.records:,} records in {loaded.seconds:.1f}s")
        limit_s = 180 + args.trades / 2_000
        for i in range(args.runs):
            if "backfill" in args.scenarios:
                run = backfill.run(stack, tuning, loaded, settings.kafka_topic, i, processes.set, limit_s)
                backfills.append(run)
                say(f"backfill {i + 1}/{args.runs}: {run.to_json()}")
            if "floor" in args.scenarios:
                floors.append(floor.run(settings, workers=os.cpu_count() or 1))
                say(f"floor {i + 1}/{args.runs}: {floors[-1].records_per_s:,.0f} records/s")
    report = None
    if "live" in args.scenarios:
        say(f"live at {args.rates} trades/s, {args.live_seconds:.0f}s each")
        report = live.run(
            stack, tuning, Workload(Fit.load(), seed=args.seed), args.rates, args.live_seconds, processes.set
        )
        say(f"live: {report['rates']}")
    soaked = None
    if "soak" in args.scenarios:
        say(f"soak: {args.soak_batches:,} batches of the slowest layer, at most {args.soak_minutes:g} min")
        soaked = soak.run(
            stack,
            tuning,
            Workload(Fit.load(), seed=args.seed),
            args.soak_batches,
            args.soak_minutes * 60,
            processes.set,
        )
        medians = {q: (c["batches"], c["first_median_s"], c["last_median_s"], c["ratio"])
                   for q, c in soaked["summary"]["queries"].items()}  # fmt: skip
        say(f"soak: {soaked['seconds']:.0f}s; per query (batches, first median s, last median s, ratio): {medians}")
    stored = None
    if "storage" in args.scenarios:
        say(f"storage: {args.storage_rate:g} trades/s for {args.storage_seconds:.0f}s once silver commits")
        stored = storage.run(
            stack, tuning, Workload(Fit.load(), seed=args.seed), args.storage_rate, args.storage_seconds, processes.set
        )
        say(f"storage: bytes per trade {stored['bytes_per_trade']}, per gold bar {stored['gold_bytes_per_bar']}")
    return results.Measured(loaded, workload, backfills, floors, report, {}, soaked, stored)


def _exit_on_sigterm(signum: int, _frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)  # unwinds like Ctrl-C: the pipeline, Kafka and MinIO are stopped on the way out


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    # The producer retries by itself while a fresh broker settles (idempotence PID, coordinator load): not news.
    logging.getLogger("librdkafka").setLevel(logging.ERROR)
    tuning = Tuning(dict(args.set), dict(args.spark_conf), args.jvm_per_layer)
    started = time.time()
    header: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "label": args.label,
        "command": shlex.join(["python", "-m", "bench", *(argv if argv is not None else sys.argv[1:])]),
        "machine": machine.describe(),
        "load_average": {"start": machine.load_average()},
    }
    home = bench_home()
    say(f"private stack in {home}")
    with Stack(home, tuning) as stack:
        processes = Processes(stack)
        sampler = MemorySampler(processes.roots, lambda name: name != SELF)
        sampler.start()
        try:
            measured = measure(args, tuning, stack, processes)
        finally:
            sampler.stop()
    effective = stack.settings
    header["load_average"]["end"] = machine.load_average()
    header["wall_s"] = round(time.time() - started)
    header["tuning"] = {
        "settings": {name: getattr(effective, name) for name in TUNED},
        "spark_master": effective.spark_master or "local[2] (the runner's default)",
        "spark_conf": tuning.spark_conf,
        "jvm_per_layer": tuning.jvm_per_layer,
    }
    out = results.assemble(dataclasses.replace(measured, memory=sampler.report()), header)
    stem = time.strftime("%Y-%m-%d") + (f"-{args.label}" if args.label else "")
    json_path = args.out_dir / f"{stem}.json"
    results.write(out, json_path)
    (args.out_dir / f"{stem}.png").write_bytes(plot.render(out))
    if out["soak"] is not None:
        (args.out_dir / f"{stem}-soak.png").write_bytes(plot.render_soak(out))
    say(f"wrote {json_path} and {stem}.png; logs in {home}/runs")
    headline = {key: out[key] for key in (*results.TARGETS, "floor_trades_per_s")}
    say(f"headline: {headline}")
    return 0
