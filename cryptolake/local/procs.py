"""Child processes of local mode: ports, PID files, readiness waits and a bounded stop.

Each service runs in a session of its own, so a Ctrl-C in the terminal does not reach it half-way and a stop can
signal its whole process group.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import random
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from pathlib import Path

LOG_TAIL_LINES = 25
PF_FLAGS = 6  # index of the flags among the fields of /proc/PID/stat after the command name
PF_KTHREAD = 0x00200000  # the flag of a kernel thread
PORT_FLOOR = 20_000  # free_port's lowest port: above the fixed ports of common servers
PORT_TRIES = 200
LINUX_EPHEMERAL_START = 32_768  # the kernel's default ip_local_port_range starts here

_random = random.SystemRandom()
_handed_out: set[int] = set()
LOOPBACK = "127.0.0.1"  # where local mode listens: this machine only


def rotate_log(path: Path, max_bytes: int, keep: int) -> bool:
    """Copy-and-truncate ``path`` if it holds more than ``max_bytes``; whether it did.

    Its writer keeps its descriptor (children write with O_APPEND: after the truncation their next write lands at
    the new end, the start). The copy becomes ``<name>.1`` (older copies shift up, the one past ``keep`` is deleted;
    ``keep`` 0 keeps none). What the method loses: the bytes written between the last read of the copy and the
    truncation, a system call later, and a line still being written at that instant (the copy ends at its last
    whole line). A line written in one write() is never split between two files.
    """
    try:
        if path.stat().st_size <= max_bytes:
            return False
    except FileNotFoundError:
        return False
    copies = [path.with_name(f"{path.name}.{n}") for n in range(1, keep + 1)]
    for older, newer in zip(reversed(copies[:-1]), reversed(copies[1:]), strict=True):
        with contextlib.suppress(FileNotFoundError):
            older.replace(newer)
    with path.open("r+b") as live:
        if not copies:
            live.truncate(0)
            return True
        with copies[0].open("wb") as copy:
            whole = 0  # bytes of the copy up to its last newline
            while chunk := live.read(1 << 20):
                newline = chunk.rfind(b"\n")
                if newline >= 0:
                    whole = copy.tell() + newline + 1
                copy.write(chunk)
            live.truncate(0)  # at once: what the child writes from the last read on is lost
            copy.truncate(whole)
    return True


class ServiceError(RuntimeError):
    """A local service cannot be installed, started or stopped; the message's first line says what to do."""

    def __init__(self, message: str, log: Path | None = None) -> None:
        self.message = message
        self.log = log
        text = message
        if log is not None:
            text += f"\n--- last lines of {log} ---\n{tail(log)}"
        super().__init__(text)


def tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    try:
        with path.open("rb") as log:
            # Only the end: a long-running service's log can be large.
            log.seek(max(0, log.seek(0, os.SEEK_END) - 64 * 1024))
            text = log.read().decode(errors="replace")
    except FileNotFoundError:
        return "(no log yet)"
    return "\n".join(text.splitlines()[-lines:]) or "(log is empty)"


def split_host_port(address: str, env_var: str) -> tuple[str, int]:
    """``host:port`` (or ``[v6]:port``) of a loopback address; local mode never listens beyond this machine."""
    host, sep, port = address.strip().rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit():
        raise ServiceError(f"{env_var}={address!r} is not host:port: give a loopback host and a numeric port")
    if not is_loopback(host):
        raise ServiceError(f"{env_var}={address!r}: local mode listens on loopback only; use 127.0.0.1:{port}")
    return host, int(port)


def join_host_port(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def is_loopback(host: str) -> bool:
    try:
        infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except socket.gaierror:
        return False
    return all(ipaddress.ip_address(info[4][0]).is_loopback for info in infos)


def port_in_use(host: str, port: int) -> bool:
    family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        # Servers bind with SO_REUSEADDR too: a port in TIME_WAIT after our own stop is free for them.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return True
    return False


def check_port_free(host: str, port: int, what: str, env_var: str) -> None:
    if port_in_use(host, port):
        raise ServiceError(
            f"port {port} on {host} ({what}) is already in use: stop what holds it or set {env_var} to another port"
        )


def can_connect(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def free_port(host: str = LOOPBACK, avoid: Collection[int] = ()) -> int:
    """A port nothing listens on now, below the kernel's ephemeral range, not handed out before by this process, and
    not in ``avoid`` (ports another process chose for services that may not listen yet).

    The kernel gives ports of the ephemeral range to every outgoing connection and every bind to port 0 (Spark's,
    Kafka clients', S3 uploads'): one of those could take a port chosen there before its service binds it, and the
    service would fail to start. Below the range only other choosers like this one compete.
    """
    low = _ephemeral_range_start()
    for _ in range(PORT_TRIES):
        port = _random.randrange(PORT_FLOOR, low)
        if port in _handed_out or port in avoid:
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind((host, port))
            except OSError:
                continue
        _handed_out.add(port)
        return port
    raise OSError(f"no free port on {host} between {PORT_FLOOR} and {low} after {PORT_TRIES} tries")


def _ephemeral_range_start() -> int:
    try:
        low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        low = LINUX_EPHEMERAL_START
    # A range that starts low leaves no room below it: choose from the usual Linux range's lower neighbours then.
    return low if low > PORT_FLOOR + PORT_TRIES else LINUX_EPHEMERAL_START


def _stat(pid: int | str) -> list[str] | None:
    """The fields of /proc/PID/stat after the command name (state, ppid, ..., flags), where /proc tells them."""
    try:
        # The command name, in parentheses, may hold spaces and ")" itself: the fields follow its last ")".
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie still answers kill(0). A thread-group leader that has exited shows as one while the process's other
    # threads still run (a JVM shutting down): the process is gone only once every thread of it is.
    states = [task[0] for task in map(_stat, _tasks(pid)) if task]
    return not states or any(state != "Z" for state in states)


def _tasks(pid: int) -> list[str]:
    """``PID/task/TID`` of each thread of ``pid``, as :func:`_stat` takes them, where /proc tells them."""
    try:
        return [f"{pid}/task/{task.name}" for task in Path(f"/proc/{pid}/task").iterdir()]
    except OSError:
        return []


def _cmdline(pid: int) -> str | None:
    """The command line of ``pid`` where /proc tells it (Linux), else None."""
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return None


def _may_run(pid: int, marker: str) -> bool:
    """Whether the live ``pid`` may be the service whose command line holds ``marker``."""
    cmdline = _cmdline(pid)
    if cmdline:
        return marker in cmdline
    # Empty for a moment while the process execs: its spawner's Popen returns, and writes the PID file, before the
    # kernel has set up the new command line. A kernel thread's stays empty, and one may have taken a stale file's PID.
    stat = _stat(pid)
    return stat is None or not int(stat[PF_FLAGS]) & PF_KTHREAD


class ManagedProcess:
    """One service process, tracked by a PID file so a second start on the same state folder can see it."""

    def __init__(self, name: str, pidfile: Path, log: Path, marker: str) -> None:
        self.name = name
        self.pidfile = pidfile
        self.log = log
        # Text of the service's command line (a path in its state folder): a PID reused by another program lacks it.
        self.marker = marker
        self._popen: subprocess.Popen[bytes] | None = None

    def running_pid(self) -> int | None:
        """PID of this service if it still runs, else None, and a stale PID file is removed.

        The process this object spawned is known by its Popen, from the moment it is spawned; another's by the PID
        file, where a live process with the marker, or still without a command line, counts as running.
        """
        if self._popen is not None:
            if self._popen.poll() is None:
                return self._popen.pid
        else:
            pid = self._pid_from_file()
            if pid is not None and _alive(pid) and _may_run(pid, self.marker):
                return pid
        self.pidfile.unlink(missing_ok=True)
        return None

    def exit_code(self) -> int | None:
        """The exit code of the process this object spawned, once it has exited; None while it runs or if unknown."""
        return None if self._popen is None else self._popen.poll()

    def _pid_from_file(self) -> int | None:
        try:
            return int(self.pidfile.read_text().strip())
        except (FileNotFoundError, ValueError):
            return None

    def check_not_running(self, state: Path) -> None:
        pid = self.running_pid()
        if pid is not None:
            raise ServiceError(
                f"{self.name} already runs for {state} (pid {pid}): stop it first, "
                "or set CRYPTOLAKE_LOCAL_HOME to another folder"
            )

    def run_once(self, argv: Sequence[str], env: Mapping[str, str], timeout: float, doing: str) -> None:
        """Run a short setup command of the service, appending its output to the service log."""
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with self.log.open("ab") as out:
            try:
                done = subprocess.run(
                    argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, env=dict(env), timeout=timeout
                )
            except subprocess.TimeoutExpired:
                raise ServiceError(f"{doing} took over {timeout:g}s; see the log", self.log) from None
        if done.returncode != 0:
            raise ServiceError(f"{doing} failed with exit code {done.returncode}; see the log", self.log)

    def spawn(self, argv: Sequence[str], env: Mapping[str, str], cwd: Path) -> int:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        self.pidfile.parent.mkdir(parents=True, exist_ok=True)
        with self.log.open("ab") as out:
            out.write(f"=== {time.strftime('%Y-%m-%d %H:%M:%S')} starting {self.name} ===\n".encode())
            out.flush()
            self._popen = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=dict(env),
                cwd=cwd,
                start_new_session=True,
            )
        self.pidfile.write_text(f"{self._popen.pid}\n")
        return self._popen.pid

    def wait_ready(self, probe: Callable[[], bool], timeout: float, hint: str) -> None:
        """Poll ``probe`` until it holds; stop the process and raise if it exits or ``timeout`` passes first."""
        deadline = time.monotonic() + timeout
        while True:
            if self._popen is not None and self._popen.poll() is not None:
                code = self._popen.returncode
                self.stop()
                raise ServiceError(f"{self.name} exited with code {code} while starting: {hint}", self.log)
            if probe():
                return
            if time.monotonic() > deadline:
                self.stop()
                raise ServiceError(f"{self.name} was not ready within {timeout:g}s: {hint}", self.log)
            time.sleep(0.2)

    def stop(self, timeout: float = 30.0) -> None:
        """SIGTERM the service's process group, SIGKILL it after ``timeout``, and wait until it is gone."""
        pid = self._popen.pid if self._popen is not None else self.running_pid()
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGTERM)
            if not self._wait_gone(pid, timeout):
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(pid, signal.SIGKILL)
                if not self._wait_gone(pid, 10.0):
                    raise ServiceError(f"{self.name} (pid {pid}) survived SIGKILL; check `ps -p {pid}`")
        self._popen = None
        self.pidfile.unlink(missing_ok=True)

    def _wait_gone(self, pid: int, timeout: float) -> bool:
        if self._popen is not None:
            try:
                self._popen.wait(timeout)  # our child: reap it, or it lingers as a zombie
            except subprocess.TimeoutExpired:
                return False
            return True
        deadline = time.monotonic() + timeout
        while _alive(pid):
            if time.monotonic() > deadline:
                return False
            time.sleep(0.1)
        return True
