"""Debian's Chromium, for the dashboard's browser test: installed with apt-get the first time it is missing."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from cryptolake.local.procs import ServiceError

CHROMIUM = Path("/usr/bin/chromium")
APT_TIMEOUT_S = 900


def install_chromium() -> Path:
    """The path of Chromium, installed from Debian's packages if it is not there yet (needs root)."""
    if CHROMIUM.exists():
        return CHROMIUM
    if os.geteuid() != 0:
        raise ServiceError(f"{CHROMIUM} is missing; install it with `sudo apt-get install chromium`")
    apt = ["apt-get", "install", "-y", "--no-install-recommends", "chromium"]
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for command in (["apt-get", "update"], apt):
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=APT_TIMEOUT_S, check=False)
        if done.returncode != 0:
            raise ServiceError(f"`{' '.join(command)}` failed: {done.stderr.strip()[-500:]}")
    return CHROMIUM
