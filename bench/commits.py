"""When rows become visible in the lake: each sink commit, with the time of the rows it made visible.

A file sink's batch becomes visible to readers (``cryptolake.lake``, silver, gold) the moment its ``_spark_metadata``
log file for that batch exists; that object's Last-Modified time is the commit time. A background thread lists each
watched table's log, and for every new batch reads a time column and a few key columns of the files it added.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from pyarrow import fs

from core.settings import Settings
from cryptolake import lake

TIME = "t"  # the watched time column, as microseconds since the epoch


@dataclass(frozen=True)
class Watch:
    """What to read of a table's new rows: a timestamp column, and columns naming the row's series.

    A partitioned table's partition values (the date aside) come as columns too: gold's ``symbol``.
    """

    time: str
    keys: tuple[str, ...] = ()


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
        self._seen_batches: dict[str, set[str]] = {table: set() for table in tables}
        self._seen_files: set[str] = set()
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
        log_dir = f"{self.settings.lake_bucket}/{table}/{lake.METADATA_DIR}"
        infos = s3.get_file_info(fs.FileSelector(log_dir, allow_not_found=True))
        new = [
            i
            for i in infos
            if i.is_file and i.base_name.removesuffix(".compact").isdigit() and i.path not in self._seen_batches[table]
        ]
        for info in sorted(new, key=lambda i: int(i.base_name.removesuffix(".compact"))):
            self._seen_batches[table].add(info.path)
            files = [f for f in self._added_files(s3, info.path) if f not in self._seen_files]
            self._seen_files.update(files)
            # A compact file lists the batches before it too: only files not seen before are this batch's.
            if files:
                rows = pa.concat_tables([_read(s3, f, watch) for f in files])
                self.commits[table].append(Commit(info.mtime.timestamp(), rows))

    @staticmethod
    def _added_files(s3: fs.FileSystem, path: str) -> list[str]:
        with s3.open_input_stream(path) as stream:
            lines = stream.read().decode().splitlines()
        out = []
        for line in lines[1:]:  # the first line is the log format version
            entry = json.loads(line)
            if entry["action"] == "add":
                uri = urlsplit(entry["path"])
                out.append(f"{uri.netloc}{unquote(uri.path)}")
        return out


def _read(s3: fs.FileSystem, path: str, watch: Watch) -> pa.Table:
    part = pq.read_table(path, columns=[watch.time, *watch.keys], filesystem=s3)
    columns = {TIME: pc.cast(part[watch.time], pa.int64()), **{k: part[k] for k in watch.keys}}
    for directory in path.split("/")[:-1]:
        name, sep, value = directory.partition("=")
        if sep and name != "date":
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
