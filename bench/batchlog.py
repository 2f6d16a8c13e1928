"""The layers' own per-batch log lines (event ``BATCH``, see jobs/runtime.py), read back for timing."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from core import events


@dataclass(frozen=True)
class Batch:
    query: str
    batch: int
    input_rows: int
    duration_s: float
    end: float  # epoch seconds the batch's progress was logged, just after it committed
    output_rows: int = 0  # the rows it wrote to its table

    @property
    def start(self) -> float:
        return self.end - self.duration_s


def parse(lines: Iterable[str]) -> list[Batch]:
    """The batch lines among a job's log lines (Spark's own lines and other events are skipped)."""
    found = []
    for line in lines:
        if not line.startswith("{"):
            continue
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if entry.get("event") != events.BATCH or entry.get("duration_ms") is None:
            continue
        end = datetime.fromisoformat(entry["ts"].replace("Z", "+00:00")).timestamp()
        found.append(
            Batch(
                entry["query"],
                entry["batch"],
                entry.get("input_rows") or 0,
                entry["duration_ms"] / 1000,
                end,
                entry.get("output_rows") or 0,
            )
        )
    return found


def read(logs: Path) -> list[Batch]:
    """Every batch logged in a folder of job logs."""
    batches = []
    for log in sorted(logs.glob("*.log")):
        batches += parse(log.read_text(errors="replace").splitlines())
    return batches


@dataclass(frozen=True)
class Drain:
    """How a set of queries worked through ``rows`` rows: from the first batch with input to the one reaching it."""

    start: float
    end: float | None  # None until every query has read ``rows`` rows
    rows_read: int  # by the query that read fewest
    batches: int
    busy_s: float  # the slowest query's summed batch durations

    @property
    def seconds(self) -> float | None:
        return None if self.end is None else self.end - self.start


def drain(batches: list[Batch], queries: Iterable[str], rows: int) -> Drain | None:
    """None until one of ``queries`` has run a batch with input."""
    starts, ends, reads, counts, busy = [], [], [], [], []
    for query in queries:
        total, end, spent, count = 0, None, 0.0, 0
        for b in sorted((b for b in batches if b.query == query), key=lambda b: b.batch):
            if b.input_rows > 0 and count == 0:
                starts.append(b.start)
            if end is None:
                total += b.input_rows
                spent += b.duration_s
                count += b.input_rows > 0
                end = b.end if total >= rows else None
        ends.append(end)
        reads.append(total)
        counts.append(count)
        busy.append(spent)
    if not starts:
        return None
    done = None if any(e is None for e in ends) else max(e for e in ends if e is not None)
    return Drain(min(starts), done, min(reads), max(counts), max(busy))


class Tail:
    """The batches logged in a folder of job logs since the last :meth:`read`: a long run's logs grow to tens of
    megabytes, too much to parse again every second."""

    def __init__(self, logs: Path) -> None:
        self.logs = logs
        self._offsets: dict[Path, int] = {}

    def read(self) -> list[Batch]:
        batches = []
        for log in sorted(self.logs.glob("*.log")):
            offset = self._offsets.get(log, 0)
            if log.stat().st_size < offset:  # rotated (emptied in place): its lines from the start are new
                offset = 0
            with log.open("rb") as stream:
                stream.seek(offset)
                chunk = stream.read()
            complete = chunk[: chunk.rfind(b"\n") + 1]  # a line being written is read whole next time
            self._offsets[log] = offset + len(complete)
            batches += parse(complete.decode(errors="replace").splitlines())
        return batches
