"""Local mode's supervision: every child of `cryptolake up` restarted when it exits, as a service manager would.

A child that exits waits before it starts again, a delay that doubles with each of its failures within the restart
window (from ``FIRST_DELAY_SECONDS`` up to ``MAX_DELAY_SECONDS``), as the Spark Operator's ``onFailureRetryInterval``
spaces its retries. At most ``budget`` restarts of one child fit in the window (its ``onFailureRetries``, counted over a
sliding window rather than a lifetime): a failure beyond them, or one no restart can fix (a bad setting, an error
that tells the operator what to do), ends the supervision with its reason.
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from core import events, exits
from core.settings import Settings, duration_seconds, env_name
from cryptolake.local.procs import ManagedProcess, ServiceError, rotate_log

FIRST_DELAY_SECONDS = 5.0
MAX_DELAY_SECONDS = 300.0
REASON_CHARS = 300  # of a log line quoted as a failure's reason
LOG_TAIL_BYTES = 64 * 1024  # read back from a log for its last error line: a child's log can be large


@dataclass(frozen=True)
class RestartPolicy:
    """How long a failed child waits before it starts again, and how many restarts of it fit in the window."""

    budget: int
    window: float  # seconds
    first_delay: float = FIRST_DELAY_SECONDS
    max_delay: float = MAX_DELAY_SECONDS

    @classmethod
    def of(cls, settings: Settings) -> RestartPolicy:
        return cls(settings.restart_budget, duration_seconds(settings.restart_window))

    def delay(self, attempt: int) -> float:
        """Seconds before the ``attempt``-th restart within the window (1 for the first) starts the child."""
        return min(self.first_delay * 2.0 ** min(attempt - 1, 64), self.max_delay)


@dataclass
class Failures:
    """One child's failures within the policy's window; the caller tells the time, so a test can fake it."""

    policy: RestartPolicy
    times: deque[float] = field(default_factory=deque)

    def add(self, now: float) -> int:
        """Count a failure at ``now``; the attempt its restart is within the window (1 for the first)."""
        while self.times and self.times[0] <= now - self.policy.window:
            self.times.popleft()
        self.times.append(now)
        return len(self.times)


@dataclass
class Child:
    process: ManagedProcess
    start: Callable[[], object]
    failures: Failures
    log_offset: int = 0  # the size of its log when it last started: what follows is this run's
    due: float | None = None  # when it starts again, while it waits to


class Supervisor:
    """The children of one run, each started again when it exits, within the policy.

    :meth:`check` does it, without waiting: the caller calls it in its own loop.
    """

    def __init__(
        self,
        policy: RestartPolicy,
        clock: Callable[[], float] = time.monotonic,
        report: Callable[[str], None] = lambda line: print(line, flush=True),
    ) -> None:
        self.policy = policy
        self.clock = clock
        self.report = report
        self.children: dict[str, Child] = {}
        self.restarts: dict[str, int] = {}  # by child, over the whole run

    def watch(self, process: ManagedProcess, start: Callable[[], object]) -> None:
        """Supervise ``process`` from now on, started already or right after; ``start`` starts it again (spawning on
        the same object). What its log holds so far is not this run's."""
        self.children[process.name] = Child(process, start, Failures(self.policy), _size(process.log))
        self.restarts.setdefault(process.name, 0)

    def check(self) -> list[str]:
        """Note the children that have exited, then start those whose delay has passed; the names started.

        Raises :class:`ServiceError` with the reason when a failure is one a restart cannot fix, or when a child has
        used its restarts within the window.
        """
        now = self.clock()
        for name, child in self.children.items():
            if child.due is None and child.process.running_pid() is None:
                code = child.process.exit_code()
                child.process.stop()  # reaps it, and ends what is left of its process group
                reason = _last_error(child.process.log, child.log_offset)
                # A bad setting, a checkpoint at odds with its tables, or (argparse's code) a bad argument.
                if code == exits.MISCONFIGURED:
                    reason = _Reason(reason.text if reason else "a bad setting or argument", final=True)
                self._failed(name, child, _exit(code), reason, now)
        started = []
        for name, child in self.children.items():
            if child.due is not None and child.due <= now:
                child.due = None
                child.log_offset = _size(child.process.log)
                try:
                    child.start()
                except (ServiceError, OSError) as exc:
                    # A port taken meanwhile, say: another try may find it free.
                    text = exc.message if isinstance(exc, ServiceError) else str(exc)
                    self._failed(name, child, "could not start", _Reason(text.splitlines()[0]), now)
                    continue
                self.restarts[name] += 1
                started.append(name)
        return started

    def rotate_logs(self, max_bytes: int, keep: int) -> list[str]:
        """Rotate the log of each child past ``max_bytes`` (:func:`rotate_log`); the names rotated. What follows in
        a rotated log is this run's."""
        rotated = [name for name, child in self.children.items() if rotate_log(child.process.log, max_bytes, keep)]
        for name in rotated:
            self.children[name].log_offset = 0
        return rotated

    def _failed(self, name: str, child: Child, how: str, reason: _Reason | None, now: float) -> None:
        because = f"{how}: {reason.text}" if reason else how
        if reason is not None and reason.final:
            raise ServiceError(f"{name} {because}; a restart cannot fix this", child.process.log)
        attempt = child.failures.add(now)
        window = _span(self.policy.window)
        if attempt > self.policy.budget:
            raise ServiceError(
                f"{name} {because}; it failed {attempt} times within {window}, more than the restart budget of "
                f"{self.policy.budget} ({env_name('restart_budget')}, {env_name('restart_window')})",
                child.process.log,
            )
        delay = self.policy.delay(attempt)
        child.due = now + delay
        self.report(f"{name} {because}; restart {attempt} of {self.policy.budget} within {window}, in {_span(delay)}")


@dataclass(frozen=True)
class _Reason:
    text: str
    final: bool = False  # the child said what the operator must do: a restart alone would fail again


def _exit(code: int | None) -> str:
    if code is not None and code < 0:
        return f"was killed by {signal.Signals(-code).name}"
    return "exited" if code is None else f"exited with code {code}"


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def _last_error(log: Path, offset: int) -> _Reason | None:
    """The last error line the child logged since ``offset``: a JSON line of level error (its event and error), or
    another program's line naming ERROR or FATAL (Kafka's, MinIO's)."""
    try:
        with log.open("rb") as file:
            file.seek(max(offset, file.seek(0, os.SEEK_END) - LOG_TAIL_BYTES))
            lines = file.read().decode(errors="replace").splitlines()
    except FileNotFoundError:
        return None
    for line in reversed(lines):
        reason = _error(line.strip())
        if reason is not None:
            return reason
    return None


def _error(line: str) -> _Reason | None:
    if line.startswith("{"):
        try:
            entry = json.loads(line)
        except ValueError:
            return None
        if not isinstance(entry, dict) or entry.get("level") not in ("error", "critical"):
            return None
        advice = entry.get("what_to_do") if entry.get("event") == events.QUERY_FAILED else None
        if advice:
            return _Reason(str(advice), final=True)
        detail = str(entry.get("error") or "").strip().splitlines()
        return _Reason(_short(": ".join([str(entry.get("event")), *detail[:1]])))
    if " ERROR " in f" {line} " or " FATAL " in f" {line} ":
        return _Reason(_short(line))
    return None


def _short(text: str) -> str:
    return text if len(text) <= REASON_CHARS else text[: REASON_CHARS - 1] + "…"


def _span(seconds: float) -> str:
    for unit, size in (("h", 3600.0), ("min", 60.0)):
        if seconds >= size:
            return f"{seconds / size:g} {unit}"
    return f"{seconds:g} s"
