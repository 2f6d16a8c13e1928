"""What the figures were measured on: the machine, how busy it was, and the versions of everything in the path."""

from __future__ import annotations

import os
import platform
import subprocess
from importlib.metadata import version
from pathlib import Path
from typing import Any

import confluent_kafka

from cryptolake.local.kafka import KAFKA_VERSION, java
from cryptolake.local.minio import MINIO_VERSION


def _cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def _ram_gib() -> float:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return round(int(line.split()[1]) / 1024**2, 1)
    return 0.0


def _java_version() -> str:
    done = subprocess.run([java(), "-version"], capture_output=True, text=True, timeout=30, check=False)
    return (done.stderr or done.stdout).splitlines()[0] if (done.stderr or done.stdout) else "unknown"


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def describe() -> dict[str, Any]:
    return {
        "cores": os.cpu_count(),
        "ram_gib": _ram_gib(),
        "cpu_model": _cpu_model(),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "java": _java_version(),
        "versions": {
            "pyspark": version("pyspark"),
            "pyarrow": version("pyarrow"),
            "confluent_kafka": version("confluent-kafka"),
            "librdkafka": confluent_kafka.libversion()[0],
            "kafka": KAFKA_VERSION,
            "minio": MINIO_VERSION,
        },
    }
