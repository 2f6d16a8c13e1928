"""The cryptolake command's mistakes and failures: a line saying what is wrong and argparse's exit codes, never a
traceback."""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pytest

from core.settings import Settings
from cryptolake import cli, lake
from cryptolake.local.paths import REPO_ROOT
from cryptolake.local.procs import free_port
from tests.lakes import bar, write_gold

NOON = datetime(2026, 11, 21, 12, tzinfo=UTC)


def no_bars(*_args: object, **_selection: object) -> pa.Table:
    return pa.table({})


def test_help_shows_no_markup(capsys: pytest.CaptureFixture[str]) -> None:
    root = cli.parser()
    texts = [root.format_help()]
    commands = next(a for a in root._actions if isinstance(a, argparse._SubParsersAction))
    texts += [command.format_help() for command in commands.choices.values()]
    assert not [text for text in texts if "`" in text]


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["bars", "BTC-USDT", "--start", "yesterday"], "argument --start: 'yesterday' is not an ISO 8601 time"),
        (["up", "--speed", "fast"], "argument --speed: invalid speed value: 'fast'"),
        (["up", "--venues", "binance,kraken-v1"], "argument --venues: synthetic venues must be some of binance,"),
        (["bars", "BTC-USDT", "--as-of", "v3"], "argument --as-of: 'v3' is neither a version number nor an ISO 8601"),
        (["history", "gold/bars_2m"], "argument TABLE: invalid choice: 'gold/bars_2m'"),
        (["history", "silver/trades", "--limit", "0"], "argument --limit: '0' is not a positive whole number"),
    ],
)
def test_a_malformed_argument_is_a_usage_error(argv: list[str], says: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        cli.main(argv)
    assert exited.value.code == 2
    assert says in capsys.readouterr().err


def test_times_are_utc_unless_they_name_their_zone() -> None:
    assert cli.iso_time("2026-11-21T12:00").as_py() == datetime(2026, 11, 21, 12, tzinfo=UTC)
    assert cli.iso_time("2026-11-21T12:00:00+02:00").as_py() == datetime(2026, 11, 21, 10, tzinfo=UTC)


def test_as_of_is_a_version_number_or_a_time_utc_unless_it_names_its_zone() -> None:
    assert cli.as_of("0") == 0 and cli.as_of("12") == 12
    assert cli.as_of("2026-11-21T12:00") == datetime(2026, 11, 21, 12, tzinfo=UTC)
    assert cli.as_of("2026-11-21T14:00+02:00") == datetime(2026, 11, 21, 12, tzinfo=UTC)


def test_bars_as_of_an_earlier_version_with_the_complete_flag(
    local_lake: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    write_gold(local_lake, [bar("binance", "BTC-USDT", NOON, "100", complete=False)])
    write_gold(local_lake, [bar("binance", "BTC-USDT", NOON, "101")], mode="overwrite")

    assert cli.main(["bars", "BTC-USDT", "--as-of", "0"]) == 0
    line = capsys.readouterr().out
    assert line.startswith("2026-11-21 12:00 binance   BTC-USDT   O 100.0000000000 ")
    assert line.rstrip().endswith(" n 1 forming")
    assert cli.main(["bars", "BTC-USDT", "--json"]) == 0
    got = json.loads(capsys.readouterr().out)
    assert (got["close"], got["complete"]) == ("101.0000000000", True)
    assert cli.main(["bars", "BTC-USDT", "--as-of", "2"]) == 1
    assert capsys.readouterr().err == "error: gold/bars_1m has no version 2: its newest is 1\n"
    assert cli.main(["bars", "ETH-USDT", "--as-of", "1"]) == 1
    assert capsys.readouterr().err == "error: no 1m bars of ETH-USDT in the lake as of 1\n"


def test_history_lists_a_tables_versions_newest_first(local_lake: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["history", "gold/bars_1m"]) == 1
    assert capsys.readouterr().err == "error: gold/bars_1m has no version in the lake yet\n"
    for close in ("100", "101", "102"):
        write_gold(local_lake, [bar("binance", "BTC-USDT", NOON, close)], mode="overwrite")

    assert cli.main(["history", "gold/bars_1m", "--limit", "2"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines] == ["2", "1"]
    line_format = r" +\d  \d{4}-\d\d-\d\d \d\d:\d\d:\d\d  WRITE +num_added_files=1 .*"
    assert all(re.fullmatch(line_format, line) for line in lines), lines
    assert cli.main(["history", "gold/bars_1m", "--json"]) == 0
    versions = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(v["version"], v["operation"], v["parameters"]["mode"]) for v in versions] == [
        (2, "WRITE", "Overwrite"),
        (1, "WRITE", "Overwrite"),
        (0, "WRITE", "Overwrite"),
    ]
    assert versions[0]["metrics"]["num_added_rows"] == 1
    assert datetime.fromisoformat(versions[0]["timestamp"]).tzinfo == UTC


def test_no_bars_says_so_and_fails(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(lake, "read_bars", no_bars)
    assert cli.main(["bars", "BTC-USDT", "--exchange", "kraken", "--json"]) == 1
    out = capsys.readouterr()
    assert out.out == "" and out.err == "error: no 1m bars of BTC-USDT on kraken in the lake yet\n"
    assert cli.main(["bars", "XRP-USDT", "--all-venues", "--interval", "5m", "--end", "2026-11-21"]) == 1
    assert capsys.readouterr().err == "error: no 5m bars of XRP-USDT across venues in that time range in the lake yet\n"


def test_bars_while_minio_is_down_is_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    endpoint = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    monkeypatch.setenv("CRYPTOLAKE_S3_ENDPOINT", endpoint)
    assert cli.main(["bars", "BTC-USDT"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1, err
    assert f"(the lake at {endpoint}: is MinIO up? `cryptolake up` runs it)" in err


# Prints many bars to a reader that stops after the first line.
MANY_BARS = """
import sys
from datetime import UTC, datetime
from pathlib import Path
import pyarrow as pa
from cryptolake import cli, lake
bar = {"exchange": "binance", "symbol": "BTC-USDT", "bar_start": datetime(2026, 11, 21, tzinfo=UTC)}
bar |= dict.fromkeys(("open", "high", "low", "close", "volume", "quote_volume", "buy_volume", "sell_volume"), 1)
bar |= {"vwap": 1.0, "trades": 1, "complete": True}
lake.read_bars = lambda *args, **selection: pa.Table.from_pylist([bar] * 20_000)
sys.exit(cli.main(["bars", "BTC-USDT"]))
"""


def test_a_reader_that_stops_early_gets_no_traceback() -> None:
    with subprocess.Popen(
        [sys.executable, "-c", MANY_BARS], cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    ) as bars:
        assert bars.stdout is not None and bars.stderr is not None
        assert bars.stdout.readline().startswith(b"2026-11-21 00:00 binance")
        bars.stdout.close()  # as `head -1` does
        err = bars.stderr.read().decode()
        assert bars.wait(timeout=60) == 1
    assert err == ""


@pytest.mark.parametrize("content", ["", '{"dir": "recv", "t": 1.0, "raw": "{}"}\n', "not json\n", '{"t": 1}\n'])
def test_a_recording_that_is_no_recording_is_an_error_before_anything_starts(
    content: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("CRYPTOLAKE_LOCAL_HOME", str(tmp_path / "state"))
    (tmp_path / "x.replay.jsonl").write_text(content)
    argv = ["up", "--source", "replay", "--recording", str(tmp_path / "x.replay.jsonl")]
    assert cli.main(argv) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1, err
    assert not (tmp_path / "state" / "logs").exists()  # nothing was started
