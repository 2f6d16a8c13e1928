"""`cryptolake up` as a user runs it: gold bars within minutes, the ingestor, Kafka and MinIO started again when
killed, and Ctrl-C leaves no process behind."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from core.settings import Settings
from cryptolake.local.paths import REPO_ROOT

pytestmark = [pytest.mark.services, pytest.mark.e2e]

GOLD_DEADLINE_S = 360
RESTART_DEADLINE_S = 360
KILLED = {"ingestor": "ingestor", "kafka": "Kafka", "minio": "MinIO"}  # PID file -> the name in up's lines
STATUS = re.compile(r"\bingestor ([\d,]+) frames \| bronze ([\d,]+) rows")


def processes_of(home: str) -> list[int]:
    """PIDs of processes whose environment names ``home`` as CRYPTOLAKE_LOCAL_HOME: every child the stack started."""
    marker = f"CRYPTOLAKE_LOCAL_HOME={home}".encode()
    found = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit() and int(proc.name) != os.getpid():
            try:
                if marker in (proc / "environ").read_bytes().split(b"\0"):
                    found.append(int(proc.name))
            except OSError:
                continue  # gone, or not ours to read
    return found


def test_ctrl_c_stops_everything_up_started(make_settings: Callable[[], Settings]) -> None:
    settings = make_settings().with_(trigger_interval="2 seconds", gold_watermark="2 seconds")
    env = {**os.environ, **settings.to_env()}
    cli = [sys.executable, "-m", "cryptolake.cli", "up", "--source", "synthetic", "--rate", "50"]
    up = subprocess.Popen(cli, cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    output: list[str] = []
    try:
        assert up.stdout is not None
        deadline = time.monotonic() + GOLD_DEADLINE_S
        for line in up.stdout:
            output.append(line)
            if "latest bar " in line or time.monotonic() > deadline or up.poll() is not None:
                break
        assert any("latest bar " in line for line in output), "no gold bar shown:\n" + "".join(output)
        assert any("MinIO console: http://127.0.0.1:" in line for line in output)
        assert any(line.startswith("Dashboard: http://127.0.0.1:") for line in output)
        assert len(processes_of(settings.local_home)) >= 7  # venue, ingestor, 3 layers (+ JVMs), Kafka, MinIO

        # Killed, each is started again with a line saying so, and `up` goes on: the new ingestor (its count starts
        # at 0) sends frames, and bronze writes rows again, with Kafka and MinIO new.
        run = Path(settings.local_home) / "run"
        for pidfile in KILLED:
            os.killpg(int((run / f"{pidfile}.pid").read_text()), signal.SIGKILL)
        restarted: set[str] = set()
        bronze_then: int | None = None  # bronze's rows in the first status line once every restart was announced
        going_on = False
        deadline = time.monotonic() + RESTART_DEADLINE_S
        for line in up.stdout:
            output.append(line)
            restarted |= {name for name in KILLED.values() if line.startswith(f"{name} was killed by SIGKILL")}
            status = STATUS.search(line)
            if restarted == set(KILLED.values()) and status:
                frames, bronze = (int(group.replace(",", "")) for group in status.groups())
                bronze_then = bronze if bronze_then is None else bronze_then
                going_on = frames > 0 and bronze > bronze_then
            if going_on or time.monotonic() > deadline or up.poll() is not None:
                break
        assert restarted == set(KILLED.values()), "not every killed process restarted:\n" + "".join(output)
        assert going_on, "no new frames through Kafka to bronze after the restarts:\n" + "".join(output)
        assert up.poll() is None, "".join(output)

        up.send_signal(signal.SIGINT)
        rest, _ = up.communicate(timeout=150)
        assert up.returncode == 0, rest
        assert "stopped; the data stays in place." in rest
    finally:
        if up.poll() is None:
            up.kill()
    assert processes_of(settings.local_home) == []
    assert not list((Path(settings.local_home) / "run").glob("*.pid"))
