"""Gold in MinIO read from outside: DuckDB through delta-rs and pyarrow as docs/lake.md shows, and the cryptolake
command's bars --as-of and history on a real S3 store."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from urllib.parse import urlsplit

import duckdb
import pytest
from deltalake import DeltaTable
from pyarrow import fs

from core.layers import QUARANTINE_TABLE
from core.settings import Settings
from cryptolake import lake
from cryptolake.local.minio import ensure_bucket
from cryptolake.local.paths import REPO_ROOT
from tests.lakes import bar, write_gold

NOON = datetime(2026, 11, 21, 12, tzinfo=UTC)


@pytest.fixture
def lake_settings(services: Settings) -> Settings:
    """The session's MinIO with a bucket of this test's own."""
    settings = services.with_(lake_bucket=f"readers-{uuid.uuid4().hex[:12]}")
    ensure_bucket(settings)
    return settings


def test_duckdb_reads_gold_through_the_delta_log(lake_settings: Settings) -> None:
    """What docs/lake.md shows: delta-rs opens the table through its log, pyarrow scans the files of
    the newest version in the chosen partitions, DuckDB queries that scan. A restated bar's replaced file stays in
    the folder, and is not read."""
    write_gold(lake_settings, [bar("binance", "BTC-USDT", NOON, "100"), bar("okx", "ETH-USDT", NOON, "5")])
    write_gold(lake_settings, [bar("binance", "BTC-USDT", NOON + timedelta(minutes=1), "103", complete=False)])
    write_gold(
        lake_settings, [bar("binance", "BTC-USDT", NOON, "101"), bar("okx", "ETH-USDT", NOON, "5")], mode="overwrite"
    )
    write_gold(lake_settings, [bar("binance", "BTC-USDT", NOON + timedelta(minutes=1), "102")])

    storage = {
        "AWS_ENDPOINT_URL": lake_settings.s3_endpoint,
        "AWS_ACCESS_KEY_ID": lake_settings.s3_access_key,
        "AWS_SECRET_ACCESS_KEY": lake_settings.s3_secret_key,
        "AWS_REGION": "us-east-1",
        "AWS_ALLOW_HTTP": "true",
    }
    gold = DeltaTable(f"s3://{lake_settings.lake_bucket}/gold/bars_1m", storage_options=storage)
    endpoint = urlsplit(lake_settings.s3_endpoint)
    s3 = fs.S3FileSystem(
        access_key=lake_settings.s3_access_key,
        secret_key=lake_settings.s3_secret_key,
        endpoint_override=endpoint.netloc,
        scheme=endpoint.scheme,
    )
    btc = gold.to_pyarrow_dataset(
        file_pruning_predicate=[("symbol", "=", "BTC-USDT")],
        filesystem=fs.SubTreeFileSystem(f"{lake_settings.lake_bucket}/gold/bars_1m", s3),
    )
    bars = duckdb.from_arrow(btc)
    complete = bars.query("bars", "SELECT bar_start, exchange, close FROM bars WHERE complete ORDER BY bar_start")
    got = complete.arrow().read_all().to_pylist()

    assert [(b["bar_start"], b["exchange"], float(b["close"])) for b in got] == [
        (NOON, "binance", 101.0),
        (NOON + timedelta(minutes=1), "binance", 102.0),
    ]


def _cli(settings: Settings, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "cryptolake.cli", *args],
        cwd=REPO_ROOT,
        env=settings.to_env() | {"PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr  # delta-rs' time travel once aborted the interpreter at its exit
    return done.stdout


def test_the_command_reads_earlier_versions_and_the_history_in_s3(lake_settings: Settings) -> None:
    write_gold(lake_settings, [bar("binance", "BTC-USDT", NOON, "100", complete=False)])
    write_gold(lake_settings, [bar("binance", "BTC-USDT", NOON, "101")], mode="overwrite")
    write_gold(lake_settings, [bar("binance", "BTC-USDT", NOON)] * 4, QUARANTINE_TABLE)

    then = json.loads(_cli(lake_settings, "bars", "BTC-USDT", "--as-of", "0", "--json"))
    now = json.loads(_cli(lake_settings, "bars", "BTC-USDT", "--json"))
    assert (then["close"], then["complete"], now["close"], now["complete"]) == (
        "100.0000000000",
        False,
        "101.0000000000",
        True,
    )
    versions = [json.loads(line) for line in _cli(lake_settings, "history", "gold/bars_1m", "--json").splitlines()]
    assert [(v["version"], v["parameters"]["mode"]) for v in versions] == [(1, "Overwrite"), (0, "Append")]
    moment = datetime.fromisoformat(versions[1]["timestamp"]).isoformat()
    assert json.loads(_cli(lake_settings, "bars", "BTC-USDT", "--as-of", moment, "--json")) == then
    assert lake.count_rows(lake_settings, QUARANTINE_TABLE) == 4
    assert lake.read_newest_bars(lake_settings, count=500)["close"].to_pylist() == [Decimal(now["close"])]


def test_as_of_a_time_reads_the_version_committed_then_among_many(lake_settings: Settings) -> None:
    for close in range(100, 116):  # past delta-rs' own resolution of a time, which missed by up to ten versions
        write_gold(lake_settings, [bar("binance", "BTC-USDT", NOON, str(close))], mode="overwrite")
    versions = lake.history(lake_settings, "gold/bars_1m")

    for version in versions:
        bars = lake.read_bars(lake_settings, as_of=version.timestamp)
        assert bars["close"].to_pylist() == [Decimal(100 + version.version)], version
