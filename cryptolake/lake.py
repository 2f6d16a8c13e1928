"""Reading the lake's tables outside Spark, with pyarrow: only files the sink committed count."""

from __future__ import annotations

import json
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from pyarrow import fs

from cryptolake.settings import Settings
from jobs.layers import Layer, gold_table

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


def reset(settings: Settings, layer: Layer, s3: fs.FileSystem | None = None) -> list[str]:
    """Delete a layer's tables and checkpoints together; returns the s3 prefixes deleted."""
    s3 = s3 or filesystem(settings)
    prefixes = [*layer.tables, *map(settings.checkpoint_key, layer.queries)]
    for prefix in prefixes:
        path = f"{settings.lake_bucket}/{prefix}"
        if s3.get_file_info(path).type != fs.FileType.NotFound:
            s3.delete_dir(path)  # the prefix itself too: delete_dir_contents leaves a marker object behind
    return [f"s3://{settings.lake_bucket}/{prefix}" for prefix in prefixes]
