"""The ``record`` and ``replay`` subcommands of ``cryptolake``."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Any

from core import logs
from core.settings import Settings
from core.venues import FEEDS
from cryptolake.venue.record import record
from cryptolake.venue.replay import replay
from cryptolake.venue.server import parse_speed


def cmd_record(_settings: Settings, args: argparse.Namespace) -> int:
    logs.configure("recorder", logging.WARNING)  # connection trouble only: the recording is the output
    written = record(args.venue, args.symbols, args.out, base_url=args.url, seconds=args.seconds, frames=args.frames)
    print(f"wrote {written:,} received frames to {args.out}")
    return 0 if written else 1


def cmd_replay(settings: Settings, args: argparse.Namespace) -> int:
    logs.configure("venue", logging.WARNING)  # the ingestor child logs the session; the venue only its trouble
    try:
        return replay(settings, args.files, args.speed, args.idle_timeout)
    except (OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


def add_commands(commands: Any) -> None:
    """Register ``record`` and ``replay`` on the ``cryptolake`` command's subparsers."""
    rec = commands.add_parser("record", help="write a venue's live frames to a *.replay.jsonl recording")
    rec.add_argument("venue", choices=sorted(FEEDS), help="the venue's feed")
    rec.add_argument("symbols", nargs="+", help="canonical symbols, e.g. BTC-USDT")
    rec.add_argument("--out", type=Path, required=True, help="the recording to write")
    rec.add_argument("--seconds", type=float, help="stop after this long (default: Ctrl-C)")
    rec.add_argument("--frames", type=int, help="stop after receiving this many frames")
    rec.add_argument("--url", help="base URL instead of the venue's public endpoint")
    rec.set_defaults(func=cmd_record)
    rep = commands.add_parser("replay", help="replay recordings through the real ingestor into the local Kafka")
    rep.add_argument("files", type=Path, nargs="+", help="*.replay.jsonl recordings")
    rep.add_argument("--speed", type=parse_speed, default=1.0, help="N times real time, or max")
    rep.add_argument(
        "--idle-timeout", type=float, default=60.0, help="give up when Kafka takes nothing new for this long"
    )
    rep.set_defaults(func=cmd_replay)
