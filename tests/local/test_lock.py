"""One ``cryptolake up`` per state folder: a second one refuses before it touches anything, and the lock dies with
its holder."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from core.settings import Settings
from cryptolake import cli
from cryptolake.local.paths import LocalPaths
from cryptolake.local.procs import ServiceError
from cryptolake.runner import down, up_lock

HOLD = """
import sys
from pathlib import Path
from cryptolake.local.lock import StateLock
lock = StateLock(Path(sys.argv[1]), Path(sys.argv[2]))
lock.acquire()  # held while `lock` lives: closing its file drops it
print("locked", flush=True)
sys.stdin.read()  # until the test closes it, or kills this process
"""


@pytest.fixture
def paths(tmp_path: Path) -> LocalPaths:
    return LocalPaths.of(Settings(local_home=str(tmp_path)))


@pytest.fixture
def holder(paths: LocalPaths) -> Iterator[subprocess.Popen[str]]:
    """Another process holding the state folder's `up` lock, as a running `cryptolake up` does."""
    lock = up_lock(paths)
    process = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(lock.path), str(lock.state)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    try:
        assert process.stdout.readline() == "locked\n"  # EOF instead if it failed
        yield process
    finally:
        process.kill()
        process.wait()


def test_the_lock_is_refused_while_another_process_holds_it_and_free_once_that_process_dies(
    paths: LocalPaths, holder: subprocess.Popen[str]
) -> None:
    lock = up_lock(paths)
    assert lock.holder() == holder.pid
    with pytest.raises(ServiceError, match=rf"cryptolake up already runs for .* \(pid {holder.pid}\): stop it first"):
        lock.acquire()
    holder.kill()  # however the holder ends, kill -9 included
    holder.wait()
    assert lock.holder() is None
    with lock:
        assert up_lock(paths).holder() == os.getpid()
    assert lock.holder() is None


def test_a_second_up_refuses_before_it_starts_or_stops_anything(
    paths: LocalPaths,
    holder: subprocess.Popen[str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    def untouchable(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("a refused `up` must not install, start or stop anything")

    for name in ("install", "LocalServices", "Pipeline"):
        monkeypatch.setattr(cli, name, untouchable)
    monkeypatch.setenv("CRYPTOLAKE_LOCAL_HOME", str(paths.state))
    assert cli.main(["up"]) == 1
    assert f"cryptolake up already runs for {paths.state} (pid {holder.pid})" in capsys.readouterr().err
    assert holder.poll() is None
    assert up_lock(paths).holder() == holder.pid


def test_down_signals_no_pid_that_a_dead_up_left_in_the_lock_file(paths: LocalPaths) -> None:
    bystander = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        lock = up_lock(paths)
        lock.path.parent.mkdir(parents=True)
        lock.path.write_text(f"{bystander.pid}\n")  # a crashed up's pid, since taken by another program
        assert not down(Settings(local_home=str(paths.state)), timeout=5)
        assert bystander.poll() is None
    finally:
        bystander.kill()
        bystander.wait()
