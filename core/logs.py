"""Structured logs: one JSON object per line, so `kubectl logs` and the local runner can both read them."""

from __future__ import annotations

import json
import logging
import signal
import sys
import threading
import time
from types import FrameType
from typing import Any


class JsonFormatter(logging.Formatter):
    def __init__(self, component: str) -> None:
        super().__init__()
        self.component = component

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "component": self.component,
            "event": record.getMessage(),
        }
        entry.update(getattr(record, "fields", {}))
        if record.exc_info:
            entry["error"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def configure(component: str, level: int = logging.INFO) -> None:
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(JsonFormatter(component))
    logging.basicConfig(level=level, handlers=[handler], force=True)
    # py4j logs every call between Python and Spark's JVM at INFO.
    logging.getLogger("py4j").setLevel(logging.WARNING)


def fields(**values: Any) -> dict[str, Any]:
    """``extra=`` for a log call whose values become top-level keys of its line."""
    return {"fields": values}


def stop_on_signals(log: logging.Logger) -> threading.Event:
    """An event set, with a log line, on SIGTERM (Kubernetes, `cryptolake down`) or SIGINT (Ctrl-C)."""
    stop = threading.Event()

    def request_stop(signum: int, _frame: FrameType | None) -> None:
        log.info("stopping", extra=fields(signal=signal.Signals(signum).name))
        stop.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    return stop
