"""The status line of `cryptolake up`, from log lines as the layers and the ingestor write them (no Spark started)."""

from __future__ import annotations

import json
import logging
import threading
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pyarrow as pa
import pytest

from core import events
from core.logs import JsonFormatter
from core.settings import Settings
from core.venues import Kraken
from cryptolake import lake
from cryptolake.runner import ONE_JVM, Pipeline, Source
from cryptolake.status import Progress
from jobs.runtime import WRITTEN_METRIC, ProgressLogger, wait_for_table
from tests.ingestion.harness import ingesting, wait_until
from tests.ingestion.scripted import ScriptedVenue, drop, hold

DAY = "2026-12-02"


def line(clock: str, **fields: Any) -> str:
    return json.dumps({"ts": f"{DAY}T{clock}.000Z", "level": "info", **fields})


def batch(clock: str, query: str, input_rows: int, output_rows: int) -> str:
    rows = {"input_rows": input_rows, "output_rows": output_rows}
    return line(clock, component="layers", event=events.BATCH, query=query, **rows)


def at(clock: str) -> float:
    return datetime.fromisoformat(f"{DAY}T{clock}+00:00").timestamp()


# What the one-JVM layers process logged in an earlier run, and in this one.
EARLIER_RUN = [line("11:00:00", event=events.QUERY_STARTED, query="bronze"), batch("11:00:05", "bronze", 5000, 5000)]
THIS_RUN = [
    "Spark's own line, not JSON",
    line("12:00:00", event=events.WAITING_FOR_UPSTREAM, table="s3a://lakehouse/silver/trades"),
    *(line("12:00:00", event=events.QUERY_STARTED, query=q) for q in ("bronze", "silver")),
    batch("12:00:10", "bronze", 300, 300),
    batch("12:00:13", "bronze", 300, 300),
    json.dumps({**json.loads(batch("12:00:14", "silver", 600, 590)), "quarantined_rows": 10}),
]
GOLD_STARTED = [line("12:00:01", event=events.QUERY_STARTED, query="gold")]
# Gold reads silver's rows and writes the bars of every table in one batch.
GOLD_BATCHES = [batch("12:00:20", "gold", 590, 4)]
INGESTOR = [
    line("12:00:01", event=events.CONNECTION_LOST, connection="binance:BTC-USDT#1", reason="gaierror: no"),
    line("12:00:02", event=events.CONNECTION_LOST, connection="kraken:BTC-USD#1", reason="timed out"),
    line("12:00:05", event=events.CONNECTED, connection="kraken:BTC-USD#2"),
    line("12:00:20", event=events.CONNECTION_LOST, connection="binance:BTC-USDT#2", reason="gaierror: [-2]"),
]


def bar(exchange: str, symbol: str, minute: int, *ohlc: str, vwap: float) -> dict[str, Any]:
    # As the lake holds them: ten decimals whatever the symbol.
    prices = zip(("open", "high", "low", "close"), (Decimal(v).quantize(Decimal("1E-10")) for v in ohlc), strict=True)
    start = datetime(2026, 12, 2, 11, minute, tzinfo=UTC)
    return {"exchange": exchange, "symbol": symbol, "bar_start": start, **dict(prices), "vwap": vwap, "trades": 7}


BARS = [
    bar("binance", "BTC-USDT", 58, "60000.1", "60000.5", "59999.9", "60000.2", vwap=60000.2),
    bar("binance", "ETH-USDT", 58, "3012.5", "3013.25", "3011.75", "3012.5", vwap=3012.4),
    bar("binance", "BTC-USDT", 59, "60012.31", "60040.02", "59990.1", "60021.44", vwap=60015.2712345),
    bar("kraken", "BTC-USDT", 59, "60012", "60041", "59990", "60020", vwap=60015.1),
    bar("binance", "SHIB-USDT", 59, "0.00001234", "0.00001250", "0.00001201", "0.0000124", vwap=0.0000123456),
]


def write(path: Path, lines: list[str]) -> None:
    with path.open("a") as out:
        out.write("".join(f"{text}\n" for text in lines))


@pytest.fixture
def pipeline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Pipeline:
    """A live-source pipeline whose layers and ingestor are stand-ins writing the lines above, then exiting."""
    monkeypatch.setattr(lake, "read_newest_bars", lambda _settings, count: pa.Table.from_pylist(BARS))
    running = Pipeline(Settings(local_home=str(tmp_path), log_max_mib=1), Source(kind="live"))
    logs = running.paths.logs
    logs.mkdir(parents=True)
    write(logs / f"{ONE_JVM}.log", EARLIER_RUN)
    for name, lines in ((ONE_JVM, THIS_RUN), ("ingestor", INGESTOR)):
        (tmp_path / f"{name}.lines").write_text("".join(f"{text}\n" for text in lines))
        running._commands[name] = ["cat", str(tmp_path / f"{name}.lines")]
    running.start()
    try:
        wait_until(lambda: sorted(running.failed()) == sorted(running._commands), "the stand-ins exited", timeout=30)
    finally:
        running.stop()
    running.poll_progress()
    return running


def test_the_status_counts_this_runs_rows_written_and_says_what_still_starts(pipeline: Pipeline) -> None:
    first, *_ = pipeline.status_line(now=at("12:00:40")).splitlines()
    # Not the earlier run's 5,000 bronze rows; rates over the 40 s since the layers started.
    assert first == (
        "ingestor 0 frames | bronze 600 rows (15/s) | silver 590 rows (15/s), 10 quarantined"
        " | gold waiting for silver/trades"
    )


def test_a_layer_is_starting_until_its_first_batch() -> None:
    progress = Progress()
    assert progress.lines(0, [], now=at("12:00:40"))[0] == (
        "ingestor 0 frames | bronze starting Spark… | silver starting Spark… | gold starting Spark…"
    )
    progress.fold(line("12:00:30", event=events.QUERY_STARTED, query="bronze").encode())
    assert "bronze starting Spark…" in progress.lines(0, [], now=at("12:00:40"))[0]  # started, no batch done yet


def test_gold_counts_bars_written_not_rows_read(pipeline: Pipeline) -> None:
    write(pipeline.process(ONE_JVM).log, [*GOLD_STARTED, *GOLD_BATCHES])
    pipeline.poll_progress()
    first, *_ = pipeline.status_line(now=at("12:00:40")).splitlines()
    assert first.endswith("| gold 4 bars (6/min)")


def test_the_status_counts_the_lines_of_a_log_rotated_between_two_polls(pipeline: Pipeline) -> None:
    log = pipeline.process(ONE_JVM).log
    write(log, [*GOLD_STARTED, *["filler " * 150] * 1_000])  # past the 1 MiB limit
    pipeline.rotate_logs()
    assert log.stat().st_size == 0
    assert log.with_name(f"{log.name}.1").stat().st_size > 2**20
    write(log, GOLD_BATCHES)  # after the rotation, from the start of the emptied log
    pipeline.poll_progress()
    first, *_ = pipeline.status_line(now=at("12:00:40")).splitlines()
    assert first.endswith("| gold 4 bars (6/min)")


def test_each_symbols_freshest_bar_is_shown_at_its_own_precision(pipeline: Pipeline) -> None:
    _, *bars, warning = pipeline.status_line(now=at("12:00:40")).splitlines()
    assert [text.strip() for text in bars] == [
        "latest bar binance BTC-USDT 11:59 O 60012.31 H 60040.02 L 59990.10 C 60021.44 vwap 60015.27 n 7",
        "latest bar binance ETH-USDT 11:58 O 3012.50 H 3013.25 L 3011.75 C 3012.50 vwap 3012.40 n 7",
        "latest bar binance SHIB-USDT 11:59 O 0.00001234 H 0.00001250 L 0.00001201 C 0.00001240 vwap 0.00001235 n 7",
    ]
    assert warning.startswith("warning")


def test_a_venue_unreachable_for_a_while_is_warned_about_with_its_reason(pipeline: Pipeline) -> None:
    assert "warning" not in pipeline.status_line(now=at("12:00:20"))  # lost 19 s ago: a reconnect may still work
    warnings = [text for text in pipeline.status_line(now=at("12:00:45")).splitlines() if "warning" in text]
    # Kraken connected again; Binance has not been reached since its first try.
    assert warnings == [
        "warning: the ingestor has not reached binance:BTC-USDT for 44 s, and keeps trying: gaierror: [-2]"
    ]


def test_rates_fade_when_a_layer_writes_nothing_more() -> None:
    progress = Progress()
    for text in THIS_RUN:
        progress.fold(text.encode())
    assert progress.lines(0, [], now=at("12:05:00"))[0].startswith("ingestor 0 frames | bronze 600 rows (0/min)")


def folded(records: list[logging.LogRecord], component: str) -> Progress:
    """``records`` as the child's JSON log lines, folded by the status in order."""
    progress = Progress()
    for record in records:
        progress.fold(JsonFormatter(component).format(record).encode())
    return progress


def test_the_lines_the_layers_really_log_are_counted(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="jobs")
    listener = ProgressLogger(2.0)
    listener.onQueryStarted(SimpleNamespace(name="bronze", runId="run-1"))
    progress = {"name": "bronze", "batchId": 0, "numInputRows": 300, "observedMetrics": {WRITTEN_METRIC: {"rows": 290}}}
    listener.onQueryProgress(SimpleNamespace(progress=SimpleNamespace(json=json.dumps(progress))))
    # A lake where silver's table has no commit on the first look and has one on the next.
    looks = iter(([], ["00000000000000000000.json"]))
    filesystem = SimpleNamespace(globStatus=lambda _path: next(looks))
    table_log = SimpleNamespace(getFileSystem=lambda _conf: filesystem)
    hadoop = SimpleNamespace(fs=SimpleNamespace(Path=lambda _uri: table_log))
    spark = SimpleNamespace(
        sparkContext=SimpleNamespace(
            _jvm=SimpleNamespace(org=SimpleNamespace(apache=SimpleNamespace(hadoop=hadoop))),
            _jsc=SimpleNamespace(hadoopConfiguration=lambda: None),
        )
    )
    wait_for_table(spark, "s3a://lakehouse/silver/trades", threading.Event(), poll_seconds=0)  # type: ignore[arg-type]

    layers = folded(caplog.records, "layers").layers
    assert (layers["bronze"].batches, layers["bronze"].rows) == (1, 290)
    assert layers["bronze"].started_at is not None
    assert layers["gold"].waiting_for == "silver/trades"


def test_the_lines_the_ingestor_really_logs_warn_of_a_lost_venue_until_it_connects_again(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    with ScriptedVenue(drop, hold) as venue, ingesting(Kraken(["BTC-USD"]), venue.url) as run:
        wait_until(lambda: len(venue.seen) == 2 and run.ingestor.links[0].connected, "connected again after the drop")
    progress = Progress()
    down = []  # the connections the status takes for lost, after each line
    for record in caplog.records:
        progress.fold(JsonFormatter("ingestor").format(record).encode())
        down.append(set(progress.down))
    assert {"kraken:BTC-USD"} in down, "the drop was not taken for a loss"
    assert down[-1] == set(), "connected again, not lost any more"
