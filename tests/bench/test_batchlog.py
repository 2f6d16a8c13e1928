"""Reading the layers' batch lines back, and how long a set of queries took to read a given number of rows."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.batchlog import Tail, drain, parse
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


def test_a_tail_reads_a_rotated_log_from_its_start(tmp_path: Path) -> None:
    tail = Tail(tmp_path)
    log = tmp_path / "layers.log"
    log.write_text("\n".join(LINES[:4]) + "\n")
    assert len(tail.read()) == 2
    with log.open("r+") as stream:  # rotation empties the log in place; the layer writes on from the start
        stream.truncate(0)
    log.write_text(LINES[4] + "\n")
    assert [(b.query, b.batch) for b in tail.read()] == [("silver", 1)]
