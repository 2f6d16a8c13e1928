"""Reading the lake's Delta tables outside Spark, through delta-rs: a table is what its ``_delta_log`` commits.

A table's folder also holds files of versions a later commit replaced (a restated bar, a compaction) and of writes
that never committed: only the log says which files make a version, so every read here goes through it.
"""

from __future__ import annotations

import contextlib
import json
import math
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import pyarrow as pa
import pyarrow.dataset as ds
from deltalake import DeltaTable
from deltalake.exceptions import DeltaError, TableNotFoundError
from pyarrow import fs

from core.layers import BAR_INTERVALS, BRONZE_TABLE, RESUME_FILE, Layer, gold_table
from core.settings import Settings, duration_seconds

# A version number, or a moment: the newest version committed at or before it.
AsOf = int | datetime
# Whatever reading the lake may raise: the store unreachable, or a log delta-rs cannot read.
READ_ERRORS = (OSError, DeltaError)
# Where a moment is looked up: the newest commits first, this many, then four times more, ... (each is a log read).
HISTORY_PAGE = 16


def filesystem(settings: Settings) -> fs.S3FileSystem:
    endpoint = urlsplit(settings.s3_endpoint)
    return fs.S3FileSystem(
        access_key=settings.s3_access_key,
        secret_key=settings.s3_secret_key,
        endpoint_override=endpoint.netloc,
        scheme=endpoint.scheme,
        region=settings.s3_region,
    )


def storage_options(settings: Settings) -> dict[str, str]:
    """delta-rs' S3 options for the lake's endpoint and keys."""
    return {
        "AWS_ENDPOINT_URL": settings.s3_endpoint,
        "AWS_ACCESS_KEY_ID": settings.s3_access_key,
        "AWS_SECRET_ACCESS_KEY": settings.s3_secret_key,
        "AWS_REGION": settings.s3_region,
        "AWS_ALLOW_HTTP": str(urlsplit(settings.s3_endpoint).scheme == "http").lower(),
        # MinIO serves a bucket under the endpoint's path, not as a host name of its own.
        "AWS_VIRTUAL_HOSTED_STYLE_REQUEST": "false",
    }


def table_uri(settings: Settings, table: str) -> str:
    return f"s3://{settings.lake_bucket}/{table}"


def _one_line(message: str) -> str:
    """delta-rs' error text without its colours and indented causes, on one line."""
    plain = re.sub(r"\x1b\[[0-9;]*m", "", message)
    return " ".join(line.strip().removeprefix("↳").strip() for line in plain.splitlines() if line.strip())


@contextlib.contextmanager
def _store_errors() -> Iterator[None]:
    try:
        yield
    except OSError as exc:
        raise OSError(_one_line(str(exc))) from None


def open_table(settings: Settings, table: str, as_of: AsOf | None = None) -> DeltaTable | None:
    """``table`` at its newest version, or at ``as_of``; None before its first commit."""
    with _store_errors():
        try:
            delta = DeltaTable(table_uri(settings, table), storage_options=storage_options(settings))
        except TableNotFoundError:
            return None
        if as_of is not None:
            # Not DeltaTable(uri, version=N): reading that one aborts the interpreter at its exit (delta-rs 1.6.6).
            delta.load_as_version(_version(delta, table, as_of))
    return delta


def _version(delta: DeltaTable, table: str, as_of: AsOf) -> int:
    newest = delta.version()
    if isinstance(as_of, int):
        if not 0 <= as_of <= newest:
            raise ValueError(f"{table} has no version {as_of}: its newest is {newest}")
        return as_of
    # From the commits' own times, as history shows them. Not load_as_version(moment): on MinIO, delta-rs 1.6.6 loaded
    # version 14 for the commit time of version 4 (and 153 for 150's), and it loads the oldest version for a moment
    # before it, where Spark refuses: so do we.
    moment = as_of if as_of.tzinfo else as_of.replace(tzinfo=UTC)
    limit = HISTORY_PAGE
    while True:
        versions = [_table_version(entry) for entry in delta.history(limit)]
        found = next((v.version for v in versions if v.timestamp <= moment), None)
        if found is not None:
            return found
        if len(versions) < limit:
            oldest = f": its oldest is version {versions[-1].version}, of {versions[-1].timestamp}" if versions else ""
            raise ValueError(f"{table} has no version as of {moment}{oldest}")
        limit *= 4


def _data_files(settings: Settings, table: str) -> fs.FileSystem:
    """pyarrow's own S3 filesystem, rooted at ``table``, to read the data files the log names. Not delta-rs' default,
    a Python filesystem: pyarrow's reader threads call back into Python through it, and one still reading when the
    interpreter exits aborts it (exit code 134, in about one read of ten with delta-rs 1.6.6)."""
    return fs.SubTreeFileSystem(f"{settings.lake_bucket}/{table}", filesystem(settings))


def _scan(
    settings: Settings,
    table: str,
    delta: DeltaTable | None,
    partition_filter: Sequence[tuple[str, str, Any]] | None,
    rows: ds.Expression | None,
    columns: Sequence[str] | None = None,
) -> pa.Table:
    if delta is None:
        return pa.table({})
    partitions = list(partition_filter or ())
    others = {column for column, _, _ in partitions} - set(delta.metadata().partition_columns)
    if others:
        raise ValueError(f"{', '.join(sorted(others))}: not partition columns of {table}")
    with _store_errors():
        # The log's partition values choose the files: other partitions' files are never opened.
        dataset = delta.to_pyarrow_dataset(
            file_pruning_predicate=partitions or None, filesystem=_data_files(settings, table)
        )
        return dataset.to_table(columns=None if columns is None else list(columns), filter=rows)


def read_table(
    settings: Settings,
    table: str,
    partition_filter: Sequence[tuple[str, str, Any]] | None = None,
    as_of: AsOf | None = None,
    *,
    columns: Sequence[str] | None = None,
    rows: ds.Expression | None = None,
) -> pa.Table:
    """A table's rows at its newest version (or ``as_of``), with its partition columns; none before its first commit.

    ``partition_filter`` holds ``(column, op, value)`` on partition columns only, e.g. ``[("date", ">=", day)]``: the
    files of other partitions are not read. ``columns`` reads only those columns of each file, ``rows`` keeps the rows
    it holds true for (e.g. ``ds.field("exchange") == "kraken"``).
    """
    return _scan(settings, table, open_table(settings, table, as_of), partition_filter, rows, columns)


def _sorted_bars(bars: pa.Table, across_venues: bool) -> pa.Table:
    if bars.num_rows == 0:
        return bars
    order = [("bar_start", "ascending"), ("symbol", "ascending")]
    if not across_venues:
        order.append(("exchange", "ascending"))
    return bars.sort_by(order)


def read_bars(
    settings: Settings,
    symbol: str | None = None,
    *,
    exchange: str | None = None,
    interval: str = "1m",
    across_venues: bool = False,
    start: pa.TimestampScalar | None = None,
    end: pa.TimestampScalar | None = None,
    as_of: AsOf | None = None,
) -> pa.Table:
    """Gold bars, oldest first: one symbol or all, optionally one exchange and bar_start in [start, end).

    Gold's ``date`` is the UTC day of ``bar_start``: a time range reads the days it spans only.
    """
    partitions: list[tuple[str, str, Any]] = [("symbol", "=", symbol)] if symbol else []
    rows = ds.field("bar_start").is_valid()
    if exchange and not across_venues:
        rows &= ds.field("exchange") == exchange
    if start is not None:
        partitions.append(("date", ">=", _day(start)))
        rows &= ds.field("bar_start") >= start
    if end is not None:
        partitions.append(("date", "<=", _day(end)))
        rows &= ds.field("bar_start") < end
    table = gold_table(interval, across_venues)
    bars = _scan(settings, table, open_table(settings, table, as_of), partitions, rows)
    return _sorted_bars(bars, across_venues)


def _day(moment: pa.TimestampScalar) -> date:
    value: datetime = moment.as_py()
    return (value.astimezone(UTC) if value.tzinfo else value).date()


def read_newest_bars(settings: Settings, interval: str = "1m", *, count: int) -> pa.Table:
    """The per-exchange bars of the newest ``date`` partitions that hold ``count`` bars of ``interval`` back from the
    newest day (500 1m bars: that day and the one before), oldest first: what a chart of the newest bars shows,
    without reading older days. The newest day is the lake's, not today: a replayed recording's bars are old."""
    table = gold_table(interval)
    delta = open_table(settings, table)
    if delta is None:
        return pa.table({})
    with _store_errors():
        days = {date.fromisoformat(p["date"]) for p in delta.partitions()}
    if not days:
        return pa.table({})
    span = math.ceil(count * duration_seconds(BAR_INTERVALS[interval]) / timedelta(days=1).total_seconds())
    newest = _scan(settings, table, delta, [("date", ">=", max(days) - timedelta(days=span))], None)
    return _sorted_bars(newest, False)


@dataclass(frozen=True)
class TableVersion:
    """One commit of a table, as its log keeps it."""

    version: int
    timestamp: datetime  # the commit's, UTC
    operation: str  # WRITE, STREAMING UPDATE, MERGE, OPTIMIZE, ...
    parameters: dict[str, Any]
    metrics: dict[str, Any]

    def summary(self) -> str:
        """The commit's row and file counts that are not zero, e.g. ``numTargetRowsUpdated=2 numOutputRows=2``."""
        counts = {k: v for k, v in self.metrics.items() if re.search(r"rows|files", k, re.IGNORECASE) and str(v) != "0"}
        return " ".join(f"{k}={v}" for k, v in counts.items())


def _table_version(entry: dict[str, Any]) -> TableVersion:
    return TableVersion(
        version=int(entry["version"]),
        timestamp=datetime.fromtimestamp(entry["timestamp"] / 1000, UTC),
        operation=str(entry.get("operation", "")),
        parameters=dict(entry.get("operationParameters") or {}),
        metrics=dict(entry.get("operationMetrics") or {}),
    )


def history(settings: Settings, table: str, limit: int | None = None) -> list[TableVersion]:
    """``table``'s versions, newest first (the ``limit`` newest); none before its first commit."""
    delta = open_table(settings, table)
    if delta is None:
        return []
    with _store_errors():
        return [_table_version(entry) for entry in delta.history(limit)]


def count_rows(settings: Settings, table: str) -> int | None:
    """Rows of ``table``'s newest version, from its log alone: the sum of each added file's ``numRecords``
    statistic, no data file read. 0 before its first commit; None if a file has no statistics to count."""
    delta = open_table(settings, table)
    if delta is None:
        return 0
    with _store_errors():
        records = delta.get_add_actions().column("num_records").to_pylist()
    if any(n is None for n in records):
        return None
    return sum(int(n) for n in records)


def reset(settings: Settings, layer: Layer, s3: fs.FileSystem | None = None) -> list[str]:
    """Delete a layer's tables and checkpoints together; returns the s3 prefixes deleted."""
    s3 = s3 or filesystem(settings)
    prefixes = [*layer.tables, *map(settings.checkpoint_key, layer.queries)]
    for prefix in prefixes:
        path = f"{settings.lake_bucket}/{prefix}"
        if s3.get_file_info(path).type != fs.FileType.NotFound:
            s3.delete_dir(path)  # the prefix itself too: delete_dir_contents leaves a marker object behind
    return [f"s3://{settings.lake_bucket}/{prefix}" for prefix in prefixes]


def highest_offsets(settings: Settings, topic: str) -> dict[int, int]:
    """Per partition of the Kafka ``topic``, the highest offset bronze holds; a partition it holds nothing of is
    absent. Two columns read a batch at a time: bronze holds every record ingested and not yet expired."""
    delta = open_table(settings, BRONZE_TABLE)
    if delta is None:
        return {}
    highest: dict[int, int] = {}
    with _store_errors():
        dataset = delta.to_pyarrow_dataset(filesystem=_data_files(settings, BRONZE_TABLE))
        for batch in dataset.to_batches(columns=["partition", "offset"], filter=ds.field("topic") == topic):
            maxima = pa.Table.from_batches([batch]).group_by("partition").aggregate([("offset", "max")])
            for row in maxima.to_pylist():
                highest[row["partition"]] = max(row["offset_max"], highest.get(row["partition"], -1))
    return highest


def restart_checkpoint(
    settings: Settings, query: str, resume: dict[str, Any], now: datetime, s3: fs.FileSystem | None = None
) -> str | None:
    """Move ``query``'s checkpoint aside, kept whole under ``<query>.set-aside-<now>``, and leave in its place one that
    holds only ``resume`` (as its ``RESUME_FILE``: where the query starts), with ``set_aside`` added: where the old one
    went, None if there was none, which is returned too. S3 has no rename: the old one's objects are copied, then
    deleted."""
    s3 = s3 or filesystem(settings)
    checkpoint = f"{settings.lake_bucket}/{settings.checkpoint_key(query)}"
    aside = None
    if s3.get_file_info(checkpoint).type != fs.FileType.NotFound:
        aside = f"s3://{checkpoint}.set-aside-{now.astimezone(UTC):%Y%m%dT%H%M%SZ}"
        fs.copy_files(checkpoint, aside.removeprefix("s3://"), source_filesystem=s3, destination_filesystem=s3)
        s3.delete_dir(checkpoint)
    s3.create_dir(checkpoint)  # a local folder must be there to write in (S3 needs none)
    with s3.open_output_stream(f"{checkpoint}/{RESUME_FILE}") as out:
        out.write(json.dumps({**resume, "set_aside": aside}).encode())
    return aside
