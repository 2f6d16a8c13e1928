"""Local mode's process tracking: a child is alive from the moment it is spawned, and a stale PID file is not."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from core.settings import Settings
from cryptolake.local import procs
from cryptolake.local.procs import ManagedProcess, free_port
from cryptolake.runner import Pipeline

SPAWNS = 100  # the race this guards against hit in most tries of a loop of 20


def sleeper(tmp_path: Path) -> ManagedProcess:
    return ManagedProcess("sleeper", tmp_path / "sleeper.pid", tmp_path / "sleeper.log", marker=str(tmp_path))


def test_a_child_counts_as_running_from_the_moment_it_is_spawned(tmp_path: Path) -> None:
    argv = [sys.executable, "-c", "import time; time.sleep(60)", str(tmp_path)]
    for attempt in range(SPAWNS):
        own = sleeper(tmp_path)
        pid = own.spawn(argv, os.environ, tmp_path)
        try:
            # First as another process sees it by the PID file (`cryptolake down`), while the child may still exec.
            assert sleeper(tmp_path).running_pid() == pid, f"spawn {attempt}: taken for dead by its PID file"
            assert own.running_pid() == pid, f"spawn {attempt}: taken for dead by its spawner"
        finally:
            own.stop()
        assert own.running_pid() is None
        assert not own.pidfile.exists()


def test_a_pid_file_of_a_process_gone_or_of_another_program_is_stale_and_removed(tmp_path: Path) -> None:
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        process = sleeper(tmp_path)
        process.pidfile.write_text(f"{other.pid}\n")  # alive, but without the marker: a PID reused
        assert process.running_pid() is None
        assert not process.pidfile.exists()
    finally:
        other.kill()
        other.wait()
    process.pidfile.write_text(f"{other.pid}\n")  # gone
    assert process.running_pid() is None
    assert not process.pidfile.exists()


def test_a_kernel_thread_that_took_a_stale_pid_is_not_the_service(tmp_path: Path) -> None:
    kthreadd = Path("/proc/2/stat")
    if not kthreadd.exists() or "(kthreadd)" not in kthreadd.read_text():
        pytest.skip("no kernel thread visible in this PID namespace")
    process = sleeper(tmp_path)
    process.pidfile.write_text("2\n")
    assert process.running_pid() is None


def test_a_process_whose_first_thread_has_exited_still_runs_until_its_last_thread_has(tmp_path: Path) -> None:
    # The leader thread ends while another thread goes on, as a JVM's can during shutdown: the leader then shows as a
    # zombie, though the process still runs.
    code = "import ctypes, threading, time; threading.Thread(target=time.sleep, args=(60,)).start(); " \
           "ctypes.CDLL(None).pthread_exit(None)"  # fmt: skip
    argv = [sys.executable, "-c", code, str(tmp_path)]
    own = sleeper(tmp_path)
    pid = own.spawn(argv, os.environ, tmp_path)
    try:
        deadline = time.monotonic() + 60
        while Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0] != "Z":
            assert time.monotonic() < deadline, "the leader thread did not exit"
            time.sleep(0.05)
        assert sleeper(tmp_path).running_pid() == pid
    finally:
        own.stop()
    assert sleeper(tmp_path).running_pid() is None


def test_free_ports_lie_below_the_ephemeral_range_and_are_never_handed_out_twice() -> None:
    # The kernel gives ports of that range to outgoing connections: one could take a chosen port before its service
    # binds it (the ingestor exited at start this way once, in a test that spawns four more JVMs at the same time).
    low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    ports = [free_port() for _ in range(50)]
    assert all(port < low for port in ports), ports
    assert len(set(ports)) == len(ports)
    for port in ports:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", port))


def test_the_pipelines_ports_are_never_those_the_settings_give_kafka_and_minio(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # `up` picks the venue's and the ingestor's ports before Kafka and MinIO bind theirs, which another process chose.
    services = [21_001, 21_002, 21_003, 21_004]
    settings = Settings(
        kafka_bootstrap=f"127.0.0.1:{services[0]}",
        kafka_controller_port=services[1],
        s3_endpoint=f"http://127.0.0.1:{services[2]}",
        minio_console_port=services[3],
        local_home=str(tmp_path),
    )
    ours = [port for port in range(21_005, 21_100) if port not in procs._handed_out][:2]
    draws = iter([*reversed(services), ours[0], *services, ours[1]])
    monkeypatch.setattr(procs._random, "randrange", lambda low, high: next(draws))
    pipeline = Pipeline(settings)
    assert (pipeline.venue_port, pipeline.settings.ingestor_http_port) == tuple(ours)
