"""Reading the layers' batch lines back, and how long a set of queries took to read a given number of rows."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.batchlog import Tail, chain, drain, parse, written_when_idle
from core import events


def line(query: str, batch: int, rows: int, ms: int, ts: str) -> str:
    entry = {"ts": ts, "level": "info", "event": events.BATCH, "query": query, "batch": batch, "input_rows": rows}
    return json.dumps(entry | {"duration_ms": ms})


LINES = [
    "26/11/21 02:07:46 WARN TaskSetManager: Lost task 1.0",
    line("silver", 0, 600, 4_000, "2026-11-21T10:00:10.000Z"),
    json.dumps({"ts": "2026-11-21T10:00:11.000Z", "event": events.QUERY_STARTED, "query": "silver"}),
    line("silver_quarantine", 0, 1_000, 3_000, "2026-11-21T10:00:12.000Z"),
    line("silver", 1, 0, 100, "2026-11-21T10:00:13.000Z"),
    line("silver", 2, 400, 2_000, "2026-11-21T10:00:20.000Z"),
    line("silver", 3, 50, 1_000, "2026-11-21T10:00:30.000Z"),
]


def test_only_batch_lines_are_read_with_their_start_and_end() -> None:
    batches = parse(LINES)
    assert [(b.query, b.batch) for b in batches] == [("silver", 0), ("silver_quarantine", 0), ("silver", 1),
                                                     ("silver", 2), ("silver", 3)]  # fmt: skip
    assert batches[0].end - batches[0].start == pytest.approx(4.0)


def test_drain_runs_from_the_first_input_to_the_batch_where_every_query_read_all() -> None:
    got = drain(parse(LINES), ["silver", "silver_quarantine"], 1_000)
    assert got is not None
    assert got.seconds == pytest.approx(14.0)  # 10:00:06 (silver's first start) to 10:00:20
    assert got.rows_read == 1_000 and got.batches == 2
    assert got.busy_s == pytest.approx(6.1)  # silver's batches up to the one that completed


def test_drain_is_open_until_every_query_is_done_and_none_before_any_input() -> None:
    batches = parse(LINES)
    assert drain(batches, ["silver", "silver_quarantine"], 2_000).end is None  # type: ignore[union-attr]
    assert drain(batches, ["gold_1m"], 10) is None


def _gold(query: str, batch: int, rows: int, written: int, ts: str) -> str:
    return json.dumps(json.loads(line(query, batch, rows, 1_000, ts)) | {"output_rows": written})


def test_rollups_drain_once_they_read_every_bar_the_1m_query_wrote_by_its_idle_batch() -> None:
    first = [
        _gold("gold_1m", 0, 900, 0, "2026-11-21T10:00:10.000Z"),
        _gold("gold_1m", 1, 100, 40, "2026-11-21T10:00:20.000Z"),
        _gold("gold_5m", 0, 40, 0, "2026-11-21T10:00:25.000Z"),
    ]
    batches = parse(first)
    from_silver = drain(batches, ["gold_1m"], 1_000)
    assert from_silver is not None and from_silver.end is not None
    # The last bars come in the batch after the one that read the last trade: not counted before it ran.
    assert written_when_idle(batches, ["gold_1m"], from_silver.end) is None
    batches = parse([*first, _gold("gold_1m", 2, 0, 7, "2026-11-21T10:00:23.000Z")])
    assert written_when_idle(batches, ["gold_1m"], from_silver.end) == 47
    assert drain(batches, ["gold_5m"], 47).end is None  # type: ignore[union-attr]
    batches = parse([*first, _gold("gold_1m", 2, 0, 7, "2026-11-21T10:00:23.000Z"),
                     _gold("gold_5m", 1, 7, 3, "2026-11-21T10:00:30.000Z")])  # fmt: skip
    rollups = drain(batches, ["gold_5m"], 47)
    assert rollups is not None
    assert chain(from_silver, rollups).seconds == pytest.approx(21.0)  # 10:00:09 to 10:00:30


def test_a_tail_reads_each_complete_line_once_across_logs(tmp_path: Path) -> None:
    tail = Tail(tmp_path)
    assert tail.read() == []
    log = tmp_path / "layers.log"
    half = LINES[4][:20]
    log.write_text("\n".join(LINES[:4]) + "\n" + half)  # the last line still being written
    assert [(b.query, b.batch) for b in tail.read()] == [("silver", 0), ("silver_quarantine", 0)]
    with log.open("a") as stream:
        stream.write(LINES[4][20:] + "\n")
    (tmp_path / "gold.log").write_text(line("gold_1m", 0, 5, 100, "2026-11-21T10:00:40.000Z") + "\n")
    assert [(b.query, b.batch) for b in tail.read()] == [("gold_1m", 0), ("silver", 1)]
    assert tail.read() == []
