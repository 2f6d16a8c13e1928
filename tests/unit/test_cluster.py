"""`cryptolake cluster`'s reading of what the API gives: batch lines among a driver's log lines, logs of several pods
merged in time order, the status as lines, and a clear error without a kube config (no cluster needed; tier 2 runs
the commands against its own, in tests/k8s/test_pods_6_pipeline.py)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from core import events
from cryptolake import cli
from cryptolake.cluster import LayerStatus, Status, _in_order, newest_batch, render

SPARK_LINE = "26/12/07 18:00:41 WARN StateStore: Error running maintenance thread"


def line(event: str, **fields: object) -> str:
    return json.dumps(
        {"ts": "2026-12-07T18:00:00.000Z", "level": "info", "component": "silver", "event": event, **fields}
    )


def test_the_newest_batch_line_and_the_newest_trade_among_the_batch_lines() -> None:
    lines = [
        SPARK_LINE,
        line(events.BATCH, batch=6, newest_event="2026-12-07T17:59:58+00:00"),
        "{not json",
        line(events.BATCH, batch=7, newest_event="2026-12-07T17:59:59.5+00:00"),
        line(events.QUERY_STARTED, query="silver"),
        line(events.BATCH, batch=8, newest_event=None),  # a batch without trades names no time
    ]
    batch, newest = newest_batch(lines)
    assert batch is not None and batch["batch"] == 8
    assert newest == "2026-12-07T17:59:59.5+00:00"
    assert newest_batch([SPARK_LINE]) == (None, None)


def test_times_with_fractions_of_any_length_sort_as_times() -> None:
    """The kubelet cuts a fraction's trailing zeros: as text, 02.1234Z would sort after 02.12345Z."""
    stamps = ["2026-12-07T18:00:02.12345Z", "2026-12-07T18:00:02.1234Z", "2026-12-07T18:00:02Z"]
    assert sorted(stamps, key=_in_order) == [stamps[2], stamps[1], stamps[0]]


def test_the_status_says_each_layers_state_batch_lag_and_freshness() -> None:
    bronze = LayerStatus(
        "bronze", "cryptolake-bronze", "RUNNING", 2, "cryptolake-bronze-driver", "Running",
        {"batch": 41, "ts": "2026-12-07T18:00:00.000Z", "input_rows": 120, "output_rows": 120, "duration_ms": 1250,
         "kafka_lag": {"crypto.trades-1": 3, "crypto.trades-0": 0}},
    )  # fmt: skip
    silver = LayerStatus(
        "silver", "cryptolake-silver", "RUNNING", 1, "cryptolake-silver-driver", "Running",
        {"batch": 40, "ts": "2026-12-07T18:00:01.000Z", "input_rows": 120, "output_rows": 118},
        "2026-12-07T17:59:58+00:00", 3.0,
    )  # fmt: skip
    gold = LayerStatus("gold", "cryptolake-gold", "SUBMITTED", 1)
    text = render(Status("cryptolake", [bronze, silver, gold], "1/1"))
    assert "bronze  RUNNING    attempts 2  driver cryptolake-bronze-driver (Running)" in text
    assert "batch 41 at 2026-12-07T18:00:00.000Z: 120 read, 120 written in 1.2 s" in text
    assert "Kafka lag: 3 records (crypto.trades-0 0, crypto.trades-1 3)" in text
    assert "newest trade 2026-12-07T17:59:58+00:00, 3 s old" in text
    assert "gold    SUBMITTED  attempts 1  no driver\n        no batch line yet" in text
    assert text.endswith("ingestor 1/1 ready")


def test_without_a_kube_config_the_command_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "missing"))
    monkeypatch.setenv("HOME", str(tmp_path))
    assert cli.main(["cluster", "status"]) == 1
    assert "no usable kube config" in capsys.readouterr().err


def test_an_unreachable_api_server_is_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A context whose server refuses connections (a closed loopback port): the error names the server, at once."""
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "c", "cluster": {"server": "http://127.0.0.1:9"}}],
        "users": [{"name": "u", "user": {"token": "t"}}],
        "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
        "current-context": "x",
    }
    (tmp_path / "config").write_text(json.dumps(config))
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "config"))
    started = datetime.now(UTC)
    assert cli.main(["cluster", "logs", "bronze"]) == 1
    err = capsys.readouterr().err
    assert "cannot reach the API server at http://127.0.0.1:9" in err, err
    assert (datetime.now(UTC) - started).total_seconds() < 60
