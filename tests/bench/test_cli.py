"""The benchmark's options: tuning knobs are checked before anything starts."""

from __future__ import annotations

import pytest

from bench.cli import parse_args
from bench.stack import Tuning
from core.settings import Settings


def test_defaults_are_the_full_benchmark() -> None:
    args = parse_args([])
    assert (args.trades, args.runs, args.live_seconds, args.rates) == (1_000_000, 3, 180.0, [500.0, 5000.0])
    assert args.scenarios == ["backfill", "floor", "live"] and not args.jvm_per_layer


def test_settings_and_spark_conf_become_a_tuning() -> None:
    args = parse_args(["--set", "shuffle_partitions=2", "--set", "trigger_interval=2 seconds", "--spark-conf",
                       "spark.ui.enabled=false", "--jvm-per-layer", "--scenarios", "backfill"])  # fmt: skip
    tuning = Tuning(dict(args.set), dict(args.spark_conf), args.jvm_per_layer)
    settings = tuning.apply(Settings())
    assert (settings.shuffle_partitions, settings.trigger_interval) == (2, "2 seconds")
    assert tuning.spark_conf == {"spark.ui.enabled": "false"} and args.scenarios == ["backfill"]


@pytest.mark.parametrize("bad", [["--set", "no_such_setting=1"], ["--set", "noequals"], ["--scenarios", "nope"]])
def test_unknown_knobs_and_scenarios_are_refused(bad: list[str]) -> None:
    with pytest.raises(SystemExit):
        parse_args(bad)


def test_the_soak_runs_only_when_asked_for_with_its_bounds() -> None:
    args = parse_args(["--scenarios", "soak", "--soak-batches", "500", "--soak-minutes", "35"])
    assert (args.scenarios, args.soak_batches, args.soak_minutes) == (["soak"], 500, 35.0)
    assert "soak" not in parse_args([]).scenarios
