"""The commit watcher follows a Delta table's log version by version: each commit's time and the rows it added."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from deltalake import DeltaTable

from bench.commits import TIME, CommitWatcher, Watch
from core.settings import Settings
from cryptolake import lake
from tests.lakes import bar, write_gold

NOON = datetime(2026, 11, 21, 12, tzinfo=UTC)


def test_each_version_with_new_rows_is_a_commit_at_its_commit_time(local_lake: Settings) -> None:
    table = "gold/bars_1m"
    watcher = CommitWatcher(local_lake, {table: Watch("bar_end", ("exchange",))})  # polled by hand, not started
    store = lake.filesystem(local_lake)  # the folder local_lake puts the bucket in
    watcher._poll(store, table, watcher.tables[table])
    assert watcher.commits[table] == []  # no table yet

    write_gold(local_lake, [bar("binance", "BTC-USDT", NOON), bar("okx", "ETH-USDT", NOON)])
    write_gold(local_lake, [bar("binance", "BTC-USDT", NOON + timedelta(minutes=1))])
    DeltaTable(lake.table_uri(local_lake, table)).optimize.compact()  # rewrites rows already visible
    watcher._poll(store, table, watcher.tables[table])

    commits = watcher.commits[table]
    history = {v.version: v.timestamp.timestamp() for v in lake.history(local_lake, table)}
    assert len(history) == 3 and [c.at for c in commits] == [history[0], history[1]]
    first = sorted(zip(*(commits[0].rows[c].to_pylist() for c in (TIME, "exchange", "symbol")), strict=True))
    end_us = int((NOON + timedelta(minutes=1)).timestamp() * 1_000_000)
    assert first == [(end_us, "binance", "BTC-USDT"), (end_us, "okx", "ETH-USDT")]
    assert commits[1].rows[TIME].to_pylist() == [end_us + 60_000_000]
    watcher._poll(store, table, watcher.tables[table])
    assert len(watcher.commits[table]) == 2, "a version is read once"


def test_a_bar_is_seen_once_complete_not_while_it_forms(local_lake: Settings) -> None:
    table = "gold/bars_1m"
    watcher = CommitWatcher(local_lake, {table: Watch("bar_end", ("exchange",), complete=True)})
    write_gold(local_lake, [bar("binance", "BTC-USDT", NOON, "100", complete=False)])
    write_gold(local_lake, [bar("binance", "BTC-USDT", NOON, "101")], mode="overwrite")
    watcher._poll(lake.filesystem(local_lake), table, watcher.tables[table])

    completed = lake.history(local_lake, table)[0]
    assert [(c.at, c.rows.num_rows) for c in watcher.commits[table]] == [(completed.timestamp.timestamp(), 1)]
