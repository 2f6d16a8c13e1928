"""The ``cryptolake`` command: set up and run the local stack, stop it, read gold bars and the tables' history."""

from __future__ import annotations

import argparse
import dataclasses
import errno
import json
import logging
import os
import sys
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pyarrow as pa

from core import exits, logs
from core.layers import ALL_VENUES, BAR_INTERVALS, LAYERS
from core.settings import Settings, SettingsError, describe
from cryptolake import lake, resume
from cryptolake.cluster import add_commands as add_cluster_commands
from cryptolake.dashboard import bars as dashboard_bars
from cryptolake.dashboard import server as dashboard_server
from cryptolake.dashboard.page import self_contained
from cryptolake.dashboard.view import LakeView
from cryptolake.local.paths import LocalPaths
from cryptolake.local.procs import ServiceError
from cryptolake.local.services import LocalServices, install
from cryptolake.runner import Pipeline, Source, down, up_lock
from cryptolake.venue import synthetic
from cryptolake.venue.cli import add_commands as add_ingestion_commands
from cryptolake.venue.server import parse_speed
from ingestion import backfill

STATUS_SECONDS = 5.0
DASHBOARD_PORT = 8050


def cmd_setup(settings: Settings, _args: argparse.Namespace) -> int:
    started = time.monotonic()
    install(settings)
    print(f"local stack installed in {LocalPaths.of(settings).cache} ({time.monotonic() - started:.0f} s)")
    return 0


def cmd_up(settings: Settings, args: argparse.Namespace) -> int:
    if args.source == "replay" and not args.recording:
        print("error: --source replay needs --recording FILE", file=sys.stderr)
        return exits.MISCONFIGURED
    paths = LocalPaths.of(settings)
    # First of all: a second `up` on this state folder must refuse before it starts, or stops, anything.
    with up_lock(paths):
        return _up(settings, args, paths)


def _up(settings: Settings, args: argparse.Namespace, paths: LocalPaths) -> int:
    # Reads the recordings: one that cannot be read fails before anything is installed or started.
    source = Source(
        kind=args.source, recordings=tuple(args.recording), speed=args.speed, rate=args.rate, venues=args.venues
    )
    pipeline = Pipeline(settings, source, jvm_per_layer=args.jvm_per_layer)
    stop = logs.stop_on_signals(logging.getLogger("cryptolake"))
    install(settings)
    services = LocalServices(settings)
    view = LakeView(pipeline.settings)
    # First, so that its address is on the screen while Kafka and MinIO start: the page fills in as the layers write.
    web = _serve_dashboard(view, args.dashboard_port)
    print(f"Dashboard: {dashboard_server.url(web)}  (live candles and the pipeline's health)", flush=True)
    try:
        services.start()
        pipeline.start(services)
        console = f"http://127.0.0.1:{settings.minio_console_port}"
        print(f"cryptolake is up ({args.source} source). Logs: {paths.logs}")
        print(f"MinIO console: {console}  user {settings.s3_access_key}  password {settings.s3_secret_key}")
        print(f"Tables: s3://{settings.lake_bucket}/bronze, /silver, /gold. Ctrl-C or `cryptolake down` stops.")
        return _watch(pipeline, view, stop)
    finally:
        web.shutdown()
        print("stopping: ingestor, then the layers (each finishes its batch), then Kafka and MinIO ...")
        pipeline.stop()
        services.stop()
        print("stopped; the data stays in place.")


def _watch(pipeline: Pipeline, view: LakeView, stop: threading.Event) -> int:
    while not stop.wait(STATUS_SECONDS):
        pipeline.poll_progress()
        print(time.strftime("%H:%M:%S"), pipeline.status_line(), flush=True)
        view.refresh(pipeline.progress, pipeline.ingested_frames(), time.time())
        try:
            pipeline.restart_failed()  # prints a line for each child that exited
        except RuntimeError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
    return 0


def _serve_dashboard(view: LakeView, port: int) -> ThreadingHTTPServer:
    """The dashboard on ``port``, or on a free one if another program has it: a busy port must not stop the stack."""
    try:
        return dashboard_server.serve(view, port)
    except OSError as exc:
        if exc.errno != errno.EADDRINUSE:
            raise
        print(f"port {port} is in use; the dashboard takes a free one")
        return dashboard_server.serve(view, 0)


def cmd_dashboard(settings: Settings, args: argparse.Namespace) -> int:
    """The dashboard alone, on the lake as it is; the health counts what the layers log from now on."""
    pipeline = Pipeline(settings, source=None, jvm_per_layer=args.jvm_per_layer)
    pipeline.follow_logs()
    view = LakeView(settings)
    stop = logs.stop_on_signals(logging.getLogger("cryptolake"))
    view.refresh(pipeline.progress, None, time.time())
    if view.error:
        print(f"error: {view.error}", file=sys.stderr)
        return 1
    web = _serve_dashboard(view, args.port)
    print(f"Dashboard: {dashboard_server.url(web)}  (the lake at {settings.s3_endpoint}). Ctrl-C stops.", flush=True)
    try:
        while not stop.wait(STATUS_SECONDS):
            pipeline.poll_progress()
            view.refresh(pipeline.progress, None, time.time())
    finally:
        web.shutdown()
    return 0


def cmd_down(settings: Settings, _args: argparse.Namespace) -> int:
    if down(settings):
        print("cryptolake stopped")
        return 0
    # No running `up` to ask: stop whatever its children or services left behind.
    Pipeline(settings).stop()
    LocalServices(settings).stop()
    print("no running `cryptolake up` found; stopped any processes it had left")
    return 0


def synthetic_venues(text: str) -> tuple[str, ...]:
    """``--venues``, checked here as ``--speed`` is."""
    venues = tuple(text.split(","))
    try:
        synthetic.check_venues(venues)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return venues


def speed(text: str) -> str:
    """``--speed`` as the venue takes it, checked here: a mistake is a usage error, not a venue that exits."""
    parse_speed(text)
    return text


ISO_EXAMPLES = "such as 2026-11-21, 2026-11-21T12:00 or 2026-11-21T12:00:00Z"


def _moment(text: str) -> datetime | None:
    """``text`` as an ISO 8601 time, UTC unless it names its zone; None if it is none."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def iso_time(text: str) -> pa.TimestampScalar:
    """An argument's ISO 8601 time, UTC unless it names its zone; a usage error if it is none."""
    moment = _moment(text)
    if moment is None:
        raise argparse.ArgumentTypeError(f"{text!r} is not an ISO 8601 time, {ISO_EXAMPLES}")
    return pa.scalar(moment, pa.timestamp("us", "UTC"))


def as_of(text: str) -> lake.AsOf:
    """``--as-of``: a table version's number, or an ISO 8601 time (the newest version committed by then)."""
    if text.isdigit():
        return int(text)
    moment = _moment(text)
    if moment is None:
        raise argparse.ArgumentTypeError(f"{text!r} is neither a version number nor an ISO 8601 time, {ISO_EXAMPLES}")
    return moment


def positive(text: str) -> int:
    if not text.isdigit() or int(text) == 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive whole number")
    return int(text)


BAR_FIELDS = (
    *("exchange", "symbol", "bar_start", "open", "high", "low", "close", "volume", "quote_volume", "vwap"),
    *("trades", "buy_volume", "sell_volume", "complete"),
)
TABLES = tuple(table for layer in LAYERS.values() for table in layer.tables)


def _json_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%dT%H:%M:%SZ")
    if isinstance(value, float | int):
        return value
    return str(value)  # decimals exactly, as strings


def _bars(settings: Settings, args: argparse.Namespace) -> list[dict[str, Any]]:
    bars = lake.read_bars(
        settings,
        args.symbol,
        exchange=args.exchange,
        interval=args.interval,
        across_venues=args.all_venues,
        start=args.start,
        end=args.end,
        as_of=args.as_of,
    )
    rows: list[dict[str, Any]] = bars.to_pylist()
    for row in rows:
        row.setdefault("exchange", ALL_VENUES)
    return rows


def _no_bars(args: argparse.Namespace) -> int:
    venue = " across venues" if args.all_venues else f" on {args.exchange}" if args.exchange else ""
    when = " in that time range" if args.start is not None or args.end is not None else ""
    version = "" if args.as_of is None else f" as of {args.as_of}"
    print(
        f"error: no {args.interval} bars of {args.symbol}{venue}{when} in the lake{version or ' yet'}", file=sys.stderr
    )
    return 1


def cmd_bars(settings: Settings, args: argparse.Namespace) -> int:
    bars = _bars(settings, args)
    if not bars:
        return _no_bars(args)
    _print_rows(bars, BAR_FIELDS, args.json, _bar_line)
    return 0


def _bar_line(bar: dict[str, Any]) -> str:
    return (
        f"{bar['bar_start']:%Y-%m-%d %H:%M} {bar['exchange']:<9} {bar['symbol']:<10} O {bar['open']} "
        f"H {bar['high']} L {bar['low']} C {bar['close']} V {bar['volume']} vwap {bar['vwap']:.8g} n {bar['trades']} "
        + ("complete" if bar["complete"] else "forming")
    )


def _print_rows(
    rows: list[dict[str, Any]], fields: tuple[str, ...], as_json: bool, line: Callable[[dict[str, Any]], str]
) -> None:
    """Each row as one JSON object of ``fields`` (decimals exactly, as strings), or as ``line`` writes it."""
    for row in rows:
        print(json.dumps({k: _json_value(row[k]) for k in fields}) if as_json else line(row))


HISTORY_FIELDS = ("version", "timestamp", "operation", "parameters", "metrics")


def cmd_history(settings: Settings, args: argparse.Namespace) -> int:
    versions = lake.history(settings, args.table, args.limit)
    if not versions:
        print(f"error: {args.table} has no version in the lake yet", file=sys.stderr)
        return 1
    for version in versions:
        if args.json:
            row = dataclasses.asdict(version)
            print(json.dumps({**row, "timestamp": version.timestamp.isoformat(timespec="milliseconds")}))
        else:
            print(
                f"{version.version:>7}  {version.timestamp:%Y-%m-%d %H:%M:%S}  {version.operation:<18} "
                f"{version.summary()}".rstrip()
            )
    return 0


def cmd_chart(settings: Settings, args: argparse.Namespace) -> int:
    """The dashboard's charts of the bars chosen, in one HTML file that needs nothing else to open."""
    bars = _bars(settings, args)
    if not bars:
        return _no_bars(args)
    venue = ALL_VENUES if args.all_venues else args.exchange or "every exchange"
    out = args.out or Path(f"{args.symbol}-{args.interval}.html")
    candles = dashboard_bars.series(bars)
    data = {"interval": args.interval, "series": candles, "spreads": dashboard_bars.spreads(candles)}
    out.write_text(self_contained(data, f"{args.symbol} {args.interval} bars, {venue}"))
    print(f"{len(bars)} bars drawn in {out}")
    return 0


def _running(settings: Settings, layer: str) -> bool:
    """Whether ``layer`` runs, said on stderr: its tables and checkpoints must not change under it."""
    pid = Pipeline(settings).layer_pid(layer)
    if pid is not None:
        print(f"error: {layer} is running (pid {pid}); stop it first", file=sys.stderr)
    return pid is not None


def cmd_reset(settings: Settings, args: argparse.Namespace) -> int:
    layer = LAYERS[args.layer]
    if _running(settings, layer.name):
        return 1
    for prefix in lake.reset(settings, layer):
        print(f"deleted {prefix}")
    if layer.downstream:
        print(
            f"{', '.join(layer.downstream)} still hold what was built from the old {layer.name}; "
            f"reset {'them' if len(layer.downstream) > 1 else 'it'} too to rebuild: "
            + " && ".join(f"cryptolake reset {name}" for name in layer.downstream)
        )
    return 0


def cmd_backfill(settings: Settings, args: argparse.Namespace) -> int:
    stop = logs.stop_on_signals(logging.getLogger("cryptolake.backfill"))
    return backfill.run(settings, args, stop, backfill.to_stderr)


def cmd_resume(settings: Settings, args: argparse.Namespace) -> int:
    if _running(settings, "bronze"):
        return 1
    starts = resume.plan(
        settings.kafka_topic, lake.highest_offsets(settings, settings.kafka_topic), resume.watermarks(settings)
    )
    for start in starts:
        print(start.describe())
    point = resume.resume_point(starts, datetime.now(UTC))
    lost = f"{point['lost']} offsets Kafka no longer holds are lost" if point["lost"] else "nothing is lost"
    print(f"bronze would go on from {json.dumps(point['starting_offsets'])}: {lost}; every table stays as it is")
    if not args.yes and not _confirmed("resume bronze from these offsets?"):
        print("nothing changed")
        return 1
    aside = lake.restart_checkpoint(settings, "bronze", point, datetime.now(UTC))
    if aside is not None:
        print(f"bronze's checkpoint moved to {aside}")
    print("bronze starts from these offsets at its next start; silver and gold go on as they are")
    return 0


def _confirmed(question: str) -> bool:
    """The user's yes to ``question``; no without a terminal to ask on (--yes says it there)."""
    if not sys.stdin.isatty():
        print("no terminal to confirm on: pass --yes to go ahead", file=sys.stderr)
        return False
    try:
        return input(f"{question} [y/N] ").strip().lower() in ("y", "yes")
    except EOFError:  # Ctrl-D: no answer is no
        return False


def cmd_settings(_settings: Settings, _args: argparse.Namespace) -> int:
    for entry in describe():
        print(f"{entry['env']}={entry['default']}\n    {entry['help']}")
    return 0


def _bar_selection(command: argparse.ArgumentParser) -> None:
    command.add_argument("symbol", help="canonical symbol, e.g. BTC-USDT")
    command.add_argument("--exchange", help="one exchange only")
    command.add_argument("--all-venues", action="store_true", help="the bars pooling every exchange")
    command.add_argument("--interval", default="1m", choices=tuple(BAR_INTERVALS))
    command.add_argument("--start", type=iso_time, help="ISO 8601 time, inclusive (UTC unless it names its zone)")
    command.add_argument("--end", type=iso_time, help="ISO 8601 time, exclusive")
    command.add_argument(
        "--as-of",
        type=as_of,
        metavar="VERSION|TIME",
        help="the table as it was: a version number (see history), or an ISO 8601 time (its newest version then)",
    )


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(
        prog="cryptolake",
        description="Set up and run the local stack, stop it, read the gold bars it wrote and the tables' history.",
    )
    commands = root.add_subparsers(dest="command", required=True)
    commands.add_parser("setup", help="install Kafka, MinIO and the Spark jars (once)").set_defaults(func=cmd_setup)
    up = commands.add_parser("up", help="run the whole pipeline locally until Ctrl-C")
    up.add_argument("--source", choices=("synthetic", "live", "replay"), default="synthetic")
    up.add_argument("--recording", type=Path, nargs="*", default=[], help="replay: *.replay.jsonl files")
    up.add_argument("--speed", type=speed, default="1", help="synthetic and replay: N times real time, or max")
    up.add_argument("--rate", type=float, default=200.0, help="synthetic: trades per second, all venues together")
    up.add_argument(
        "--venues",
        type=synthetic_venues,
        default=synthetic.DEMO_VENUES,
        help=f"synthetic: the venues served, each in its own protocol (default: {','.join(synthetic.DEMO_VENUES)})",
    )
    up.add_argument("--jvm-per-layer", action="store_true", help="a Spark driver for each layer, as in Kubernetes")
    up.add_argument("--dashboard-port", type=int, default=DASHBOARD_PORT, help="the dashboard's port (0: any free)")
    up.set_defaults(func=cmd_up)
    dashboard = commands.add_parser("dashboard", help="serve the live dashboard alone, on the lake as it is")
    dashboard.add_argument("--port", type=int, default=DASHBOARD_PORT, help="its port (0: any free one)")
    layers_help = "the layers run a driver each, as up --jvm-per-layer runs them"
    dashboard.add_argument("--jvm-per-layer", action="store_true", help=layers_help)
    dashboard.set_defaults(func=cmd_dashboard)
    commands.add_parser("down", help="stop a running cryptolake up").set_defaults(func=cmd_down)
    bars = commands.add_parser("bars", help="print gold bars from the lake")
    _bar_selection(bars)
    bars.add_argument("--json", action="store_true", help="one JSON object per line, decimals as strings")
    bars.set_defaults(func=cmd_bars)
    history_command = commands.add_parser(
        "history", help="list a lake table's versions, newest first: its writes, restatements and compactions"
    )
    history_command.add_argument("table", choices=TABLES, metavar="TABLE", help=f"one of {', '.join(TABLES)}")
    history_command.add_argument("--limit", type=positive, default=20, help="the newest N versions (default 20)")
    history_command.add_argument("--json", action="store_true", help="one JSON object per version")
    history_command.set_defaults(func=cmd_history)
    chart_command = commands.add_parser("chart", help="write the dashboard's charts of gold bars as one HTML file")
    _bar_selection(chart_command)
    chart_command.add_argument("--out", type=Path, help="HTML file to write (default: SYMBOL-INTERVAL.html)")
    chart_command.set_defaults(func=cmd_chart)
    reset = commands.add_parser("reset", help="delete a layer's tables and checkpoints, to rebuild it")
    reset.add_argument("layer", choices=tuple(LAYERS))
    reset.set_defaults(func=cmd_reset)
    backfill_command = commands.add_parser(
        "backfill",
        help="send a venue's archived trades of past days through Kafka to the layers (Binance's daily files)",
        description="Progress goes to stderr; run it again after an interruption to resume, twice to add nothing.",
    )
    backfill.add_arguments(backfill_command)
    backfill_command.set_defaults(func=cmd_backfill)
    resume_command = commands.add_parser(
        "resume",
        help="after a data loss, have bronze go on from Kafka's earliest offsets past those it holds, tables kept",
    )
    resume_command.add_argument("layer", choices=("bronze",), help="the layer that reads Kafka")
    resume_command.add_argument("--yes", action="store_true", help="go ahead without asking, once the gap is named")
    resume_command.set_defaults(func=cmd_resume)
    commands.add_parser("settings", help="list every setting's env var, default and meaning").set_defaults(
        func=cmd_settings
    )
    add_ingestion_commands(commands)
    add_cluster_commands(commands)
    return root


# Commands that read or write the lake in MinIO.
LAKE_COMMANDS = ("bars", "history", "chart", "reset", "resume", "dashboard")


def main(argv: list[str] | None = None) -> int:
    """Run a command; an error is a line on stderr and exit code 1, a bad setting or usage 2 (argparse's), no
    traceback."""
    args = parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        settings = Settings.from_env()
    except SettingsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exits.MISCONFIGURED
    try:
        code: int = args.func(settings, args)
        sys.stdout.flush()  # a reader that has gone shows here, where it can be handled, rather than at exit
    except BrokenPipeError:
        # The reader stopped early (`bars ... | head`): nothing left to say. Later writes go nowhere, so Python does
        # not report the closed pipe again at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return exits.FAILED
    except ServiceError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exits.FAILED
    except OSError as exc:
        where = f" (the lake at {settings.s3_endpoint}: is MinIO up? `cryptolake up` runs it)"
        print(f"error: {exc}{where if args.command in LAKE_COMMANDS else ''}", file=sys.stderr)
        return exits.FAILED
    except ValueError as exc:  # a file given that is not what it should be, e.g. a recording without trades
        print(f"error: {exc}", file=sys.stderr)
        return exits.FAILED
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return code


if __name__ == "__main__":
    sys.exit(main())
