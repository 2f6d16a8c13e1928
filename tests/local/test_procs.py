"""Local mode's process tracking: a child is alive from the moment it is spawned, and a stale PID file is not."""

from __future__ import annotations

import os
import re
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


# A child writing numbered lines of random length to its log, each in one write() on an O_APPEND descriptor as the
# children of `up` do, until a stop file appears.
LINE_WRITER = """
import os, random, sys
log, stop, name = sys.argv[1:4]
fd = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
seq = 0
while not os.path.exists(stop):
    os.write(fd, f"{name} {seq} {'x' * random.randrange(10, 600)}\\n".encode())
    seq += 1
    if seq % 50 == 0:
        os.sched_yield()
"""
LINE = re.compile(r"(w\d) (\d+) x{10,599}")


def rotate_while_writing(tmp_path: Path, writers: int, max_bytes: int, keep: int, rotations: int) -> Path:
    """Rotate the log of ``writers`` live children ``rotations`` times; the log, once they have all exited."""
    log, stop = tmp_path / "child.log", tmp_path / "stop"
    children = [
        subprocess.Popen([sys.executable, "-c", LINE_WRITER, str(log), str(stop), f"w{i}"]) for i in range(writers)
    ]
    try:
        done = 0
        deadline = time.monotonic() + 180
        while done < rotations:
            assert time.monotonic() < deadline, f"only {done} of {rotations} rotations within 180 s: writers stuck?"
            assert all(c.poll() is None for c in children), "a writer exited early"
            done += procs.rotate_log(log, max_bytes, keep)
            time.sleep(0.005)
    finally:
        stop.touch()
        for child in children:
            child.wait(60)
    return log


def test_rotation_tears_no_line_and_loses_lines_only_at_a_rotation(tmp_path: Path) -> None:
    rotations = 25
    log = rotate_while_writing(tmp_path, writers=3, max_bytes=200_000, keep=rotations, rotations=rotations)
    files = [log.with_name(f"{log.name}.{n}") for n in range(rotations, 0, -1)] + [log]  # oldest first
    last: dict[str, int] = {}
    gaps = 0
    for path in files:
        text = path.read_text()
        assert text.endswith("\n") or not text, f"{path.name} ends in a partial line"
        first_in_file: dict[str, int] = {}
        for number, line in enumerate(text.splitlines()):
            match = LINE.fullmatch(line)
            assert match, f"{path.name}:{number + 1}: torn line {line[:80]!r}"
            name, seq = match[1], int(match[2])
            if name in first_in_file:
                # Within one file every writer's lines follow on: what the method loses, it loses at a rotation.
                assert seq == last[name] + 1, f"{path.name}:{number + 1}: {name} jumps {last[name]} -> {seq}"
            else:
                first_in_file[name] = seq
                assert seq > last.get(name, -1), f"{path.name}: {name} repeats or goes back to {seq}"
                gaps += seq != last.get(name, -1) + 1
            last[name] = seq
    assert gaps <= rotations * 3  # at most a gap per writer per rotation


def test_rotation_keeps_the_given_number_of_copies_and_bounds_the_log(tmp_path: Path) -> None:
    rotate_while_writing(tmp_path, writers=2, max_bytes=100_000, keep=2, rotations=12)
    assert sorted(p.name for p in tmp_path.glob("child.log*")) == ["child.log", "child.log.1", "child.log.2"]
    # A copy is made only past the limit, and the older copies are gone: no writer's first line is kept. (How far
    # past the limit a copy goes depends on how long the machine leaves the rotation unscheduled, so no upper bound.)
    copies = [tmp_path / f"child.log.{n}" for n in (1, 2)]
    assert all(copy.stat().st_size >= 100_000 for copy in copies)
    kept = [LINE.fullmatch(line) for path in tmp_path.glob("child.log*") for line in path.read_text().splitlines()]
    assert not [m for m in kept if m and m[2] == "0"], "a first line outlived 12 rotations with 2 copies kept"


def test_a_log_under_its_limit_is_left_alone(tmp_path: Path) -> None:
    log = tmp_path / "child.log"
    log.write_text("a line\n")
    assert not procs.rotate_log(log, 100, keep=2)
    assert not procs.rotate_log(tmp_path / "absent.log", 100, keep=2)
    assert log.read_text() == "a line\n"
    assert not log.with_name("child.log.1").exists()


def test_rotation_without_copies_just_empties_the_log(tmp_path: Path) -> None:
    log = tmp_path / "child.log"
    log.write_text("a line\n" * 100)
    assert procs.rotate_log(log, 100, keep=0)
    assert log.read_text() == ""
    assert [p.name for p in tmp_path.iterdir()] == ["child.log"]
