"""The lake reader reads what a Delta table's log commits, prunes partitions before it opens a file, travels in time
and counts rows from the log alone."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest
from deltalake import DeltaTable, write_deltalake

from core.layers import BRONZE_TABLE, LAYERS, QUARANTINE_TABLE, RESUME_FILE, SILVER_TABLE
from core.settings import Settings
from cryptolake import lake
from tests.lakes import bar, write_gold

NOON = datetime(2026, 11, 21, 12, tzinfo=UTC)
MINUTE = timedelta(minutes=1)
DAY = timedelta(days=1)


def _folder(settings: Settings, table: str = "gold/bars_1m") -> Path:
    return Path(lake.table_uri(settings, table))


def _keys(bars: pa.Table) -> list[tuple[str, str, datetime]]:
    return [(b["exchange"], b["symbol"], b["bar_start"]) for b in bars.to_pylist()]


def _drop_data_files(settings: Settings, date: str) -> None:
    """Delete the data files of one day while the log still lists them: a read that opens them fails."""
    for path in _folder(settings).glob(f"date={date}/**/*.parquet"):
        path.unlink()


def test_bars_come_sorted_and_filtered_by_symbol_exchange_and_time(local_lake: Settings) -> None:
    write_gold(local_lake, [bar("okx", "BTC-USDT", NOON + MINUTE), bar("binance", "ETH-USDT", NOON)])
    write_gold(local_lake, [bar("binance", "BTC-USDT", NOON + MINUTE), bar("binance", "BTC-USDT", NOON)])

    assert _keys(lake.read_bars(local_lake)) == [
        ("binance", "BTC-USDT", NOON),
        ("binance", "ETH-USDT", NOON),
        ("binance", "BTC-USDT", NOON + MINUTE),
        ("okx", "BTC-USDT", NOON + MINUTE),
    ]
    start, end = pa.scalar(NOON + MINUTE, pa.timestamp("us", "UTC")), pa.scalar(NOON + 2 * MINUTE)
    got = lake.read_bars(local_lake, "BTC-USDT", exchange="binance", start=start, end=end)
    assert _keys(got) == [("binance", "BTC-USDT", NOON + MINUTE)]
    assert got["complete"].to_pylist() == [True]


def test_a_time_range_opens_only_the_days_it_spans(local_lake: Settings) -> None:
    write_gold(local_lake, [bar("binance", "BTC-USDT", NOON - DAY), bar("binance", "BTC-USDT", NOON)])
    _drop_data_files(local_lake, "2026-11-20")
    start = pa.scalar(NOON, pa.timestamp("us", "UTC"))

    assert _keys(lake.read_bars(local_lake, start=start)) == [("binance", "BTC-USDT", NOON)]
    assert _keys(lake.read_table(local_lake, "gold/bars_1m", [("date", "=", NOON.date())])) == _keys(
        lake.read_bars(local_lake, start=start)
    )
    with pytest.raises(OSError, match="2026-11-20"):  # the whole table needs the file that is gone
        lake.read_bars(local_lake)


def test_a_partition_filter_names_partition_columns_only(local_lake: Settings) -> None:
    write_gold(local_lake, [bar("binance", "BTC-USDT", NOON)])
    with pytest.raises(ValueError, match="exchange: not partition columns"):
        lake.read_table(local_lake, "gold/bars_1m", [("exchange", "=", "binance")])


def test_a_read_can_take_some_columns_and_the_rows_a_filter_keeps(local_lake: Settings) -> None:
    write_gold(local_lake, [bar("binance", "BTC-USDT", NOON, "100"), bar("okx", "BTC-USDT", NOON, "101")])

    got = lake.read_table(local_lake, "gold/bars_1m", columns=["exchange", "close"], rows=ds.field("exchange") == "okx")
    assert got.column_names == ["exchange", "close"]
    assert [(b["exchange"], b["close"]) for b in got.to_pylist()] == [("okx", Decimal(101))]


def test_files_the_log_does_not_list_are_not_read(local_lake: Settings) -> None:
    write_gold(local_lake, [bar("binance", "BTC-USDT", NOON, "100")])
    write_gold(local_lake, [bar("binance", "BTC-USDT", NOON, "101")], mode="overwrite")  # a restated bar
    stray = _folder(local_lake) / "date=2026-11-21" / "symbol=BTC-USDT" / "part-uncommitted.parquet"
    pq.write_table(
        pa.Table.from_pylist([bar("binance", "BTC-USDT", NOON, "999")]).drop_columns(["date", "symbol"]), stray
    )

    assert lake.read_bars(local_lake)["close"].to_pylist() == [pa.scalar(101, pa.decimal128(18, 10)).as_py()]
    # What docs/lake.md warns of: the folder read as plain Parquet holds the replaced and the uncommitted bars too.
    folder = ds.dataset(_folder(local_lake), format="parquet", partitioning="hive", exclude_invalid_files=True)
    assert folder.count_rows() == 3


def test_as_of_reads_a_version_by_number_or_by_time(local_lake: Settings) -> None:
    write_gold(local_lake, [bar("binance", "BTC-USDT", NOON, "100", complete=False)])
    time.sleep(0.01)  # commit times are in milliseconds
    between = datetime.now(UTC)
    time.sleep(0.01)
    write_gold(local_lake, [bar("binance", "BTC-USDT", NOON, "101")], mode="overwrite")

    def closes(as_of: lake.AsOf | None) -> list[tuple[object, bool]]:
        bars = lake.read_bars(local_lake, as_of=as_of).to_pylist()
        return [(float(b["close"]), b["complete"]) for b in bars]

    assert closes(None) == closes(1) == closes(datetime.now(UTC)) == [(101.0, True)]
    assert closes(0) == closes(between) == [(100.0, False)]
    assert closes(between.replace(tzinfo=None)) == [(100.0, False)], "a time without a zone is UTC"
    with pytest.raises(ValueError, match="gold/bars_1m has no version 2: its newest is 1"):
        lake.read_bars(local_lake, as_of=2)
    with pytest.raises(ValueError, match=r"has no version as of 2026-11-21 .*its oldest is version 0"):
        lake.read_bars(local_lake, as_of=NOON)


def test_history_shows_writes_overwrites_and_merges_newest_first(local_lake: Settings) -> None:
    write_gold(local_lake, [bar("binance", "BTC-USDT", NOON)])
    write_gold(local_lake, [bar("binance", "BTC-USDT", NOON, "101")], mode="overwrite")
    restated = pa.Table.from_pylist([bar("binance", "BTC-USDT", NOON, "102")], lake.read_bars(local_lake).schema)
    table = DeltaTable(lake.table_uri(local_lake, "gold/bars_1m"))
    merge = table.merge(
        restated,
        predicate="t.exchange = s.exchange AND t.symbol = s.symbol AND t.bar_start = s.bar_start",
        source_alias="s",
        target_alias="t",
    )
    merge.when_matched_update_all().when_not_matched_insert_all().execute()

    versions = lake.history(local_lake, "gold/bars_1m")
    assert [(v.version, v.operation) for v in versions] == [(2, "MERGE"), (1, "WRITE"), (0, "WRITE")]
    assert versions[1].parameters["mode"] == "Overwrite"
    assert "num_target_rows_updated=1" in versions[0].summary().split()
    assert "execution_time_ms" not in versions[0].summary()
    assert versions[0].timestamp >= versions[1].timestamp >= versions[2].timestamp
    assert [v.version for v in lake.history(local_lake, "gold/bars_1m", limit=1)] == [2]
    assert lake.read_bars(local_lake)["close"].to_pylist() == restated["close"].to_pylist()


def test_rows_are_counted_from_the_log_without_reading_a_data_file(local_lake: Settings) -> None:
    write_gold(local_lake, [bar("binance", "BTC-USDT", NOON), bar("okx", "BTC-USDT", NOON)], QUARANTINE_TABLE)
    write_gold(local_lake, [bar("binance", "ETH-USDT", NOON - DAY)], QUARANTINE_TABLE)
    for path in _folder(local_lake, QUARANTINE_TABLE).glob("**/*.parquet"):
        path.unlink()

    assert lake.count_rows(local_lake, QUARANTINE_TABLE) == 3


def test_a_table_before_its_first_commit_is_empty(local_lake: Settings) -> None:
    assert lake.read_bars(local_lake).num_rows == 0
    assert lake.read_newest_bars(local_lake, count=500).num_rows == 0
    assert lake.history(local_lake, "silver/trades") == []
    assert lake.count_rows(local_lake, QUARANTINE_TABLE) == 0


def test_the_newest_bars_come_from_the_lakes_newest_days_only(local_lake: Settings) -> None:
    old = NOON - 400 * DAY  # a replayed recording's day: the newest is the lake's, not today
    write_gold(local_lake, [bar("binance", "BTC-USDT", old - 5 * DAY), bar("okx", "BTC-USDT", old - DAY)])
    write_gold(local_lake, [bar("binance", "BTC-USDT", old), bar("binance", "ETH-USDT", old + MINUTE)])
    _drop_data_files(local_lake, (old - 5 * DAY).date().isoformat())

    assert _keys(lake.read_newest_bars(local_lake, count=500)) == [
        ("okx", "BTC-USDT", old - DAY),
        ("binance", "BTC-USDT", old),
        ("binance", "ETH-USDT", old + MINUTE),
    ]
    assert lake.read_newest_bars(local_lake, "1h", count=500).num_rows == 0  # no 1h table yet


def test_an_unreachable_store_is_one_line_without_colours() -> None:
    settings = Settings(s3_endpoint="http://127.0.0.1:9")  # nothing listens on the discard port
    with pytest.raises(OSError, match=r"127\.0\.0\.1:9") as raised:
        lake.read_bars(settings)
    assert "\n" not in str(raised.value) and "\x1b" not in str(raised.value)


def test_storage_options_address_minio_by_path_over_plain_http() -> None:
    options = lake.storage_options(Settings(s3_endpoint="http://127.0.0.1:9000"))
    assert options["AWS_ENDPOINT_URL"] == "http://127.0.0.1:9000" and options["AWS_ALLOW_HTTP"] == "true"
    assert options["AWS_VIRTUAL_HOSTED_STYLE_REQUEST"] == "false"
    assert lake.storage_options(Settings(s3_endpoint="https://s3.example.com"))["AWS_ALLOW_HTTP"] == "false"


def test_reset_deletes_a_layers_tables_and_checkpoints_and_nothing_else(local_lake: Settings) -> None:
    write_gold(local_lake, [bar("binance", "BTC-USDT", NOON)])
    write_gold(local_lake, [bar("binance", "BTC-USDT", NOON)], "gold/bars_1m_all_venues")
    write_gold(local_lake, [bar("binance", "BTC-USDT", NOON)], SILVER_TABLE)
    bucket = _folder(local_lake).parents[1]
    for query in ("gold", "silver"):
        commits = bucket / local_lake.checkpoint_key(query) / "commits"
        commits.mkdir(parents=True)
        (commits / "0").write_text("v1")

    deleted = lake.reset(local_lake, LAYERS["gold"])

    assert "s3://lakehouse/gold/bars_1m" in deleted and "s3://lakehouse/_checkpoints/gold" in deleted
    left = {p.relative_to(bucket).parts[:2] for p in bucket.rglob("*") if p.is_file()}
    assert left == {("silver", "trades"), ("_checkpoints", "silver")}
    assert lake.read_bars(local_lake).num_rows == 0 and lake.count_rows(local_lake, SILVER_TABLE) == 1


def _write_bronze(settings: Settings, rows: list[tuple[str, int, int]]) -> None:
    """Bronze rows of (topic, partition, offset), as many other columns as the reader needs: none."""
    topics, partitions, offsets = zip(*rows, strict=True)
    columns = {"topic": list(topics), "partition": list(partitions), "offset": list(offsets)}
    schema = pa.schema([("topic", pa.string()), ("partition", pa.int32()), ("offset", pa.int64())])
    table = pa.table(columns, schema=schema)
    write_deltalake(lake.table_uri(settings, BRONZE_TABLE), table, mode="append")


def test_the_highest_offsets_bronze_holds_are_per_partition_of_one_topic(local_lake: Settings) -> None:
    assert lake.highest_offsets(local_lake, "t") == {}
    _write_bronze(local_lake, [("t", 0, 4), ("t", 0, 9), ("t", 1, 3), ("other", 2, 50)])
    _write_bronze(local_lake, [("t", 1, 12), ("t", 0, 7), ("other", 0, 99)])
    assert lake.highest_offsets(local_lake, "t") == {0: 9, 1: 12}


def test_restarting_a_checkpoint_keeps_the_old_one_whole_aside_and_leaves_only_where_to_start(
    local_lake: Settings,
) -> None:
    bucket = Path(lake.table_uri(local_lake, "x")).parent
    checkpoint = bucket / local_lake.checkpoint_key("bronze")
    (checkpoint / "offsets").mkdir(parents=True)
    (checkpoint / "offsets" / "3").write_text("v1 offsets")
    (checkpoint / "metadata").write_text("{}")

    aside = lake.restart_checkpoint(local_lake, "bronze", {"lost": 5}, NOON)

    assert aside == "s3://lakehouse/_checkpoints/bronze.set-aside-20261121T120000Z"
    kept = bucket / "_checkpoints" / "bronze.set-aside-20261121T120000Z"
    assert (kept / "offsets" / "3").read_text() == "v1 offsets" and (kept / "metadata").read_text() == "{}"
    assert [p.name for p in checkpoint.iterdir()] == [RESUME_FILE]
    assert json.loads((checkpoint / RESUME_FILE).read_text()) == {"lost": 5, "set_aside": aside}


def test_restarting_a_checkpoint_there_is_none_of_sets_nothing_aside(local_lake: Settings) -> None:
    assert lake.restart_checkpoint(local_lake, "bronze", {"lost": 0}, NOON) is None
    written = Path(lake.table_uri(local_lake, local_lake.checkpoint_key("bronze"))) / RESUME_FILE
    assert json.loads(written.read_text()) == {"lost": 0, "set_aside": None}
