"""When rows become visible in the lake: each Delta commit, with the time of the rows it made visible.

A Delta table's version becomes visible to readers (``cryptolake.lake``, silver, gold) the moment its log file
``_delta_log/<version>.json`` exists; the commit's time is the ``timestamp`` of its ``commitInfo``. A background
thread reads each watched table's next log file as it appears, and reads a time column and a few key columns of the
files that version added with new data (a compaction's files hold rows already visible).
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from pyarrow import fs

from core.settings import Settings
from cryptolake import lake

TIME = "t"  # the watched time column, as microseconds since the epoch
LOG_DIR = "_delta_log"


@dataclass(frozen=True)
class Watch:
    """What to read of a table's new rows: a timestamp column, and columns naming the row's series.

    A partitioned table's partition values (the date aside) come as columns too: gold's ``symbol``. ``complete``
    keeps only the rows whose ``complete`` column is true: gold writes a bar while it forms, and again when complete.
    """

    time: str
    keys: tuple[str, ...] = ()
    complete: bool = False


@dataclass(frozen=True)
class Commit:
    at: float  # epoch seconds
    rows: pa.Table  # of every row the commit made visible: TIME, the keys, the partition values but the date


class CommitWatcher(threading.Thread):
    """Follows the commits of ``tables`` until :meth:`stop`."""

    def __init__(self, settings: Settings, tables: dict[str, Watch], interval: float = 0.5) -> None:
        super().__init__(name="commits", daemon=True)
        self.settings = settings
        self.tables = tables
        self.interval = interval
        self.commits: dict[str, list[Commit]] = {table: [] for table in tables}
        self.error: BaseException | None = None
        self._next_version = dict.fromkeys(tables, 0)
        self._halt = threading.Event()

    def run(self) -> None:
        s3 = lake.filesystem(self.settings)
        try:
            while not self._halt.is_set():
                for table, watch in self.tables.items():
                    self._poll(s3, table, watch)
                self._halt.wait(self.interval)
        except BaseException as exc:  # reported by the scenario
            self.error = exc

    def stop(self) -> None:
        self._halt.set()
        self.join()

    def _poll(self, s3: fs.FileSystem, table: str, watch: Watch) -> None:
        """Every version committed since the last poll, in order: versions are numbered without gaps."""
        root = f"{self.settings.lake_bucket}/{table}"
        while True:
            try:
                with s3.open_input_stream(f"{root}/{LOG_DIR}/{self._next_version[table]:020d}.json") as stream:
                    actions = [json.loads(line) for line in stream.read().decode().splitlines() if line]
            except FileNotFoundError:
                return
            self._next_version[table] += 1
            at, added = commit_actions(actions)
            rows = [_read(s3, f"{root}/{path}", partition, watch) for path, partition in added]
            if sum(part.num_rows for part in rows):
                self.commits[table].append(Commit(at, pa.concat_tables(rows)))


def commit_actions(actions: list[dict[str, Any]]) -> tuple[float, list[tuple[str, dict[str, str]]]]:
    """A version's commit time (epoch seconds) and the files it added with new rows, each with its partition
    values; paths relative to the table, decoded."""
    at = next(a["commitInfo"]["timestamp"] for a in actions if "commitInfo" in a) / 1000
    added = []
    for action in actions:
        add = action.get("add")
        if add is not None and add.get("dataChange", True):
            uri = urlsplit(add["path"])  # relative, URL-encoded; absolute only in shallow clones, which we never make
            added.append((unquote(uri.path), dict(add.get("partitionValues") or {})))
    return at, added


def _read(s3: fs.FileSystem, path: str, partition: dict[str, str], watch: Watch) -> pa.Table:
    flag = ["complete"] if watch.complete else []
    part = pq.read_table(path, columns=[watch.time, *watch.keys, *flag], filesystem=s3)
    if watch.complete:
        part = part.filter(part["complete"])
    columns = {TIME: pc.cast(part[watch.time], pa.int64()), **{k: part[k] for k in watch.keys}}
    for name, value in partition.items():
        if name != "date":
            columns[name] = pa.array([value] * part.num_rows, pa.string())
    return pa.table(columns)


def within(rows: pa.Table, since_us: int, until_us: int) -> pa.Table:
    """The rows whose time is in [since_us, until_us)."""
    return rows.filter(pc.and_(pc.greater_equal(rows[TIME], since_us), pc.less(rows[TIME], until_us)))


def visible_after(commits: list[Commit], since_us: int, until_us: int) -> list[float]:
    """Seconds from each row's time to its commit, for rows whose time is in [since_us, until_us)."""
    out: list[float] = []
    for commit in commits:
        out += [commit.at - t / 1e6 for t in within(commit.rows, since_us, until_us)[TIME].to_pylist()]
    return out
