"""Ingest benchmark: frames per second one ingestor process pushes into Kafka (acks=all), and its CPU time.

The local venue replays recordings (the Binance captures by default) at full speed, repeated to make a long run; the
real ingestor (``python -m ingestion``, pinned to one core) reads them into a fresh topic of a Kafka broker that this
script starts (or of ``--bootstrap``). A run is timed from the ingestor's first frame to Kafka's acknowledgement of
the last one, reading the ingestor's own /metrics; CPU time is the ingestor's (all threads, librdkafka's too) over the
same window. Several runs; the medians are what to quote. Linux only (/proc, CPU affinity). See README-ingest.md.

    .venv/bin/python bench/ingest.py [--runs 5] [--repeat 40]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

from core.settings import Settings
from cryptolake.local.kafka import Kafka, ensure_topic, install_kafka
from cryptolake.local.paths import LocalPaths
from cryptolake.local.procs import can_connect, free_port
from cryptolake.venue.recordings import load
from ingestion.metrics import metric_total

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO.parent / "shared" / "fixtures" / "binance"
POLL_SECONDS = 0.05
RUN_TIMEOUT = 300.0
TICKS = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Run:
    frames: int
    seconds: float
    cpu_seconds: float

    @property
    def frames_per_s(self) -> float:
        return self.frames / self.seconds

    @property
    def cpu_ms_per_1000(self) -> float:
        return self.cpu_seconds / self.frames * 1e6


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process, all its threads."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime, stime: fields 14 and 15 of stat(5)


def pin(pid: int, cpus: set[int]) -> None:
    """Move every thread of ``pid`` onto ``cpus``."""
    for task in Path(f"/proc/{pid}/task").iterdir():
        os.sched_setaffinity(int(task.name), cpus)


@contextmanager
def kafka_broker(bootstrap: str | None, others: set[int]) -> Iterator[str]:
    if bootstrap:
        yield bootstrap
        return
    with tempfile.TemporaryDirectory(prefix="cryptolake-bench-") as home:
        settings = Settings(
            kafka_bootstrap=f"127.0.0.1:{free_port()}", kafka_controller_port=free_port(), local_home=home
        )
        install_kafka(LocalPaths.of(settings))
        kafka = Kafka(settings)
        pid = kafka.start(120)
        pin(pid, others)
        try:
            yield settings.kafka_bootstrap
        finally:
            kafka.stop()


def one_run(bootstrap: str, recordings: list[Path], repeat: int, expected: int, cpus: tuple[int, set[int]]) -> Run:
    settings = Settings(kafka_bootstrap=bootstrap, kafka_topic=f"bench-{uuid.uuid4().hex[:8]}")
    ensure_topic(settings, partitions=4)
    port = free_port()
    ingestor_cpu, others = cpus
    venue_cmd = [sys.executable, "-m", "cryptolake.venue.server", "--port", str(port), "--speed", "max"]
    venue = subprocess.Popen(
        [*venue_cmd, "--repeat", str(repeat), "--recording", *map(str, recordings)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
        cwd=REPO,
    )
    pin(venue.pid, others)
    deadline = time.monotonic() + 30
    while not can_connect("127.0.0.1", port):
        if time.monotonic() > deadline or venue.poll() is not None:
            raise RuntimeError("the local venue did not start")
        time.sleep(0.1)
    http_port = free_port()
    run_settings = settings.with_(
        binance_url=f"ws://127.0.0.1:{port}", symbols=("BTC-USDT", "ETH-USDT"), ingestor_http_port=http_port
    )
    ingestor = subprocess.Popen(
        [sys.executable, "-m", "ingestion"],
        env={**os.environ, **run_settings.to_env()},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
        cwd=REPO,
    )
    pin(ingestor.pid, {ingestor_cpu})
    try:
        return _measure(ingestor, http_port, expected)
    finally:
        for process in (ingestor, venue):
            process.send_signal(signal.SIGTERM)
            process.wait(60)


def _measure(ingestor: subprocess.Popen[bytes], http_port: int, expected: int) -> Run:
    started = time.monotonic()
    first: tuple[float, float, float] | None = None  # (time, frames delivered, CPU seconds) at the first frame
    while time.monotonic() - started < RUN_TIMEOUT:
        if ingestor.poll() is not None:
            raise RuntimeError(f"the ingestor exited with code {ingestor.returncode}")
        now, cpu = time.monotonic(), cpu_seconds(ingestor.pid)
        received = metric_total(http_port, "frames_total")
        delivered = metric_total(http_port, "delivered_total")
        if first is None and received > 0:
            first = (now, delivered, cpu)
        if first is not None and delivered >= expected:
            return Run(int(expected - first[1]), now - first[0], cpu - first[2])
        time.sleep(POLL_SECONDS)
    raise RuntimeError(f"Kafka did not acknowledge {expected:,} frames within {RUN_TIMEOUT:g}s")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--repeat", type=int, default=40, help="play the recordings this many times in a run")
    parser.add_argument("--recording", type=Path, nargs="*", default=sorted(FIXTURES.glob("*.replay.jsonl")))
    parser.add_argument("--bootstrap", help="an existing Kafka broker (default: start one for the benchmark)")
    parser.add_argument("--cpu", type=int, default=0, help="the core the ingestor is pinned to")
    parser.add_argument("--json", type=Path, help="also write the runs and medians to this file")
    args = parser.parse_args(argv)
    if not args.recording:
        parser.error(f"no recordings: pass --recording, or put the Binance captures in {FIXTURES}")
    others = (os.sched_getaffinity(0) - {args.cpu}) or {args.cpu}
    expected = sum(load(path).trade_frames for path in args.recording) * args.repeat
    print(f"{expected:,} frames a run, ingestor on core {args.cpu}, venue and Kafka on {sorted(others)}")
    runs = []
    with kafka_broker(args.bootstrap, others) as bootstrap:
        for number in range(1, args.runs + 1):
            run = one_run(bootstrap, args.recording, args.repeat, expected, (args.cpu, others))
            runs.append(run)
            print(
                f"run {number}: {run.frames_per_s:,.0f} frames/s, {run.cpu_ms_per_1000:.1f} ms CPU per 1,000 frames "
                f"({run.frames:,} frames in {run.seconds:.2f} s)",
                flush=True,
            )
    rate = statistics.median(r.frames_per_s for r in runs)
    cpu = statistics.median(r.cpu_ms_per_1000 for r in runs)
    print(f"median of {len(runs)} runs: {rate:,.0f} frames/s, {cpu:.1f} ms CPU per 1,000 frames")
    if args.json:
        summary = {"runs": [asdict(r) for r in runs], "median_frames_per_s": rate, "median_cpu_ms_per_1000": cpu}
        args.json.write_text(json.dumps(summary, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
