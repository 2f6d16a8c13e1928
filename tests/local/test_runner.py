"""How `cryptolake up` starts its children: in the state folder, not the repository, with the repository's code."""

from __future__ import annotations

import sys
from pathlib import Path

from core.settings import Settings
from cryptolake.local.paths import REPO_ROOT
from cryptolake.runner import ONE_JVM, Pipeline, Source
from ingestion.config import connections
from tests.ingestion.harness import wait_until

# Stands in for the layers' command: says where it runs and whose code it imports, then exits.
WHERE_AM_I = "import os, jobs.all_layers; print('cwd', os.getcwd()); print('code', jobs.all_layers.__file__)"


def test_the_layers_run_in_the_state_folder_with_the_repository_code(tmp_path: Path) -> None:
    pipeline = Pipeline(Settings(local_home=str(tmp_path)), source=None)
    pipeline._commands[ONE_JVM] = [sys.executable, "-c", WHERE_AM_I]
    pipeline.start()
    try:
        wait_until(lambda: pipeline.failed() == [ONE_JVM], "the stand-in exited", timeout=60)
    finally:
        pipeline.stop()
    lines = (pipeline.paths.logs / f"{ONE_JVM}.log").read_text().splitlines()
    assert f"cwd {tmp_path.resolve() / 'work'}" in lines  # where Spark leaves artifacts/
    assert f"code {REPO_ROOT / 'jobs' / 'all_layers.py'}" in lines


def test_recordings_reach_the_venue_by_absolute_paths() -> None:
    source = Source(kind="replay", recordings=(Path("a.replay.jsonl"),))
    args = source.venue_args(Settings())
    assert args[args.index("--recording") + 1] == str(Path.cwd() / "a.replay.jsonl")


def test_the_synthetic_source_sets_the_ingestor_on_every_venue_it_serves(tmp_path: Path) -> None:
    settings = Settings(local_home=str(tmp_path), symbols=("BTC-USDT", "SOL-USDT"))
    pipeline = Pipeline(settings, Source(kind="synthetic", venues=("binance", "kraken", "coinbase")))
    venue = f"ws://127.0.0.1:{pipeline.venue_port}"
    urls = {c.url for c in connections(pipeline.settings)}
    assert urls == {
        f"{venue}/binance/stream?streams=btcusdt@trade/solusdt@trade",
        f"{venue}/kraken/v2",
        f"{venue}/coinbase",
    }
    assert {c.exchange.symbols for c in connections(pipeline.settings)} == {("BTC-USDT", "SOL-USDT")}
    args = pipeline._commands["venue"]
    assert args[args.index("--venues") + 1] == "binance,kraken,coinbase"
    assert args[args.index("--symbols") + 1] == "BTC-USDT,SOL-USDT"
