"""Reading the lake's tables outside Spark, with pyarrow: only files the sink committed count."""

from __future__ import annotations

import json
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from pyarrow import fs

from core.layers import BAR_INTERVALS, ROLLUP_INTERVALS, SILVER_TABLE, Layer, gold_query, gold_table
from core.settings import Settings, duration_seconds

METADATA_DIR = "_spark_metadata"


def filesystem(settings: Settings) -> fs.S3FileSystem:
    endpoint = urlsplit(settings.s3_endpoint)
    return fs.S3FileSystem(
        access_key=settings.s3_access_key,
        secret_key=settings.s3_secret_key,
        endpoint_override=endpoint.netloc,
        scheme=endpoint.scheme,
        region=settings.s3_region,
    )


@dataclass(frozen=True)
class DataFile:
    path: str  # bucket/key, as pyarrow's S3 filesystem wants it
    partition: dict[str, str]


def committed_files(s3: fs.FileSystem, bucket: str, table: str) -> list[DataFile]:
    """Files of ``table`` that its file sink's ``_spark_metadata`` log lists as added and not deleted.

    The log holds one file per batch and, every few batches, a ``N.compact`` file that holds all entries up to N: read
    the newest compact file and the batches after it. Files written by a batch that never committed are not listed.
    """
    log_dir = f"{bucket}/{table}/{METADATA_DIR}"
    infos = s3.get_file_info(fs.FileSelector(log_dir, allow_not_found=True))
    batches: dict[int, str] = {}
    for info in infos:
        name = info.base_name
        stem = name.removesuffix(".compact")
        if info.is_file and stem.isdigit() and not name.startswith("."):
            batches[int(stem)] = info.path
    compacted = [b for b, path in batches.items() if path.endswith(".compact")]
    first = max(compacted, default=0)
    added: dict[str, DataFile] = {}
    for batch in sorted(b for b in batches if b >= first):
        with s3.open_input_stream(batches[batch]) as stream:
            lines = stream.read().decode().splitlines()
        for line in lines[1:]:  # the first line is the log format version
            entry = json.loads(line)
            uri = urlsplit(entry["path"])
            path = f"{uri.netloc}{unquote(uri.path)}"
            if entry["action"] == "delete":
                added.pop(path, None)
            else:
                added[path] = DataFile(path, _partition_values(path))
    return list(added.values())


def _partition_values(path: str) -> dict[str, str]:
    return dict(part.split("=", 1) for part in path.split("/")[:-1] if "=" in part)


def read_table(
    settings: Settings, table: str, partition_filter: dict[str, str] | None = None, s3: fs.FileSystem | None = None
) -> pa.Table:
    """A table's committed rows, with its partition columns; ``partition_filter`` skips other partitions' files."""
    s3 = s3 or filesystem(settings)
    wanted = partition_filter or {}
    files = [
        f
        for f in committed_files(s3, settings.lake_bucket, table)
        if all(f.partition.get(k) == v for k, v in wanted.items())
    ]
    parts = []
    for data_file in files:
        part = pq.read_table(data_file.path, filesystem=s3)
        for key, value in data_file.partition.items():
            part = part.append_column(key, pa.array([value] * part.num_rows, pa.string()))
        parts.append(part)
    if not parts:
        return pa.table({})
    return pa.concat_tables(parts, promote_options="default")


def read_bars(
    settings: Settings,
    symbol: str | None = None,
    *,
    exchange: str | None = None,
    interval: str = "1m",
    across_venues: bool = False,
    start: pa.TimestampScalar | None = None,
    end: pa.TimestampScalar | None = None,
) -> pa.Table:
    """Gold bars, oldest first: one symbol or all, optionally one exchange and bar_start in [start, end)."""
    table = gold_table(interval, across_venues)
    bars = read_table(settings, table, {"symbol": symbol} if symbol else None)
    if bars.num_rows == 0:
        return bars
    mask = pc.true_unless_null(bars["bar_start"])
    if exchange and not across_venues:
        mask = pc.and_(mask, pc.equal(bars["exchange"], exchange))
    if start is not None:
        mask = pc.and_(mask, pc.greater_equal(bars["bar_start"], start))
    if end is not None:
        mask = pc.and_(mask, pc.less(bars["bar_start"], end))
    order = [("bar_start", "ascending"), ("symbol", "ascending")]
    if not across_venues:
        order.append(("exchange", "ascending"))
    return bars.filter(mask).sort_by(order)


def committed_watermark(settings: Settings, query: str, s3: fs.FileSystem | None = None) -> int | None:
    """The watermark (ms since the epoch) of ``query``'s newest committed batch, from its checkpoint; None before.

    A batch evicts, and so emits, every bar that ends at or before its watermark: once the batch is committed, its
    bars are in the table, and a trade of such a bar that had not reached gold by then never will count.
    """
    s3 = s3 or filesystem(settings)
    checkpoint = f"{settings.lake_bucket}/{settings.checkpoint_key(query)}"
    commits = s3.get_file_info(fs.FileSelector(f"{checkpoint}/commits", allow_not_found=True))
    batches = [int(info.base_name) for info in commits if info.is_file and info.base_name.isdigit()]
    if not batches:
        return None
    # An offsets file: its format version, then the batch's metadata (watermark, batch time, conf), then offsets.
    with s3.open_input_stream(f"{checkpoint}/offsets/{max(batches)}") as stream:
        metadata = json.loads(stream.read().decode().splitlines()[1])
    return int(metadata["batchWatermarkMs"])


def read_late_trades(
    settings: Settings, interval: str = "1m", *, across_venues: bool = False, s3: fs.FileSystem | None = None
) -> pa.Table:
    """Silver trades that came too late for their bar of ``interval``, with that bar's ``bar_start``.

    Gold counts a trade in its bar only if the trade reaches gold before the watermark passes the bar; a later one
    stays in silver and is left out of the bar. This finds exactly those. Gold reads silver in the order silver wrote
    it, and each bar keeps ``last_silver_time``, the silver batch time of the latest trade it counts: a trade of an
    emitted bar that silver wrote after that time is late. So is every trade of a bar that gold's committed
    watermark has passed without emitting it (none of its trades came in time). Bars still open are not judged.
    """
    s3 = s3 or filesystem(settings)
    width_s = int(duration_seconds(BAR_INTERVALS[interval]))
    if interval in ROLLUP_INTERVALS and not across_venues:
        # Made from the 1m bars: a trade counts in its bar exactly when it counts in its 1m bar.
        late = read_late_trades(settings, s3=s3)
        return late.set_column(
            late.schema.get_field_index("bar_start"),
            "bar_start",
            pc.floor_temporal(late["event_time"], width_s, "second"),
        )
    watermark_ms = committed_watermark(settings, gold_query(interval, across_venues), s3)
    trades = read_table(settings, SILVER_TABLE, s3=s3)
    if watermark_ms is None or trades.num_rows == 0:
        return trades.slice(0, 0)
    bars = read_table(settings, gold_table(interval, across_venues), s3=s3)
    # Bars start on multiples of their width since the epoch, as Spark's windows do.
    key = ["symbol", "bar_start"] if across_venues else ["exchange", "symbol", "bar_start"]
    trades = trades.append_column("bar_start", pc.floor_temporal(trades["event_time"], width_s, "second"))
    if bars.num_rows == 0:  # no bar emitted yet: a table of none, with the columns to join on
        bars = pa.table({**{k: trades[k].slice(0, 0) for k in key}, "last_silver_time": trades["silver_time"][:0]})
    joined = trades.join(bars.select([*key, "last_silver_time"]), keys=key, join_type="left outer")
    bar_start_us = pc.cast(pc.cast(joined["bar_start"], pa.timestamp("us")), pa.int64())
    passed = pc.less_equal(pc.add(bar_start_us, width_s * 1_000_000), watermark_ms * 1000)
    late = pc.or_kleene(
        pc.greater(joined["silver_time"], joined["last_silver_time"]),
        pc.and_kleene(pc.is_null(joined["last_silver_time"]), passed),
    )
    return joined.filter(late).drop_columns(["last_silver_time"]).sort_by([("event_time", "ascending")])


def reset(settings: Settings, layer: Layer, s3: fs.FileSystem | None = None) -> list[str]:
    """Delete a layer's tables and checkpoints together; returns the s3 prefixes deleted."""
    s3 = s3 or filesystem(settings)
    prefixes = [*layer.tables, *map(settings.checkpoint_key, layer.queries)]
    for prefix in prefixes:
        path = f"{settings.lake_bucket}/{prefix}"
        if s3.get_file_info(path).type != fs.FileType.NotFound:
            s3.delete_dir(path)  # the prefix itself too: delete_dir_contents leaves a marker object behind
    return [f"s3://{settings.lake_bucket}/{prefix}" for prefix in prefixes]
