"""Memory and CPU time of process trees (a PySpark driver with its JVM), read with psutil.

A background thread samples every ``interval`` seconds: for each named root process, the RSS of it and all its
descendants; the stack's total is the sum over roots at one instant, and its peak the highest such sum (not the sum
of each process's own peak). CPU time is read on demand: unlike wall time, it hardly changes when other work shares
the machine.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Callable

import psutil

GIB = 1024**3


def _children() -> dict[int, list[int]]:
    """Every process's children, by PID."""
    children: dict[int, list[int]] = defaultdict(list)
    for process in psutil.process_iter(["ppid"]):
        children[process.info["ppid"]].append(process.pid)
    return children


def _rss(pid: int) -> float:
    try:
        return float(psutil.Process(pid).memory_info().rss)
    except psutil.Error:
        return 0.0  # gone between the listing and the read


def _cpu(pid: int) -> float:
    """User and system seconds of the process, and of its children it has waited for."""
    try:
        times = psutil.Process(pid).cpu_times()
    except psutil.Error:
        return 0.0
    return float(times.user + times.system + times.children_user + times.children_system)


def _tree_sum(roots: dict[str, int], measure: Callable[[int], float]) -> dict[str, float]:
    """``measure`` summed over each root process and its descendants, except those under another root (the
    benchmark process starts the services and the layers, which count as their own)."""
    children = _children()
    other_roots = set(roots.values())
    out = {}
    for name, root in roots.items():
        total, todo = 0.0, [root]
        while todo:
            pid = todo.pop()
            total += measure(pid)
            todo += [c for c in children.get(pid, []) if c not in other_roots]
        out[name] = total
    return out


def tree_rss(roots: dict[str, int]) -> dict[str, float]:
    """Bytes resident in each root's tree."""
    return _tree_sum(roots, _rss)


def tree_cpu(roots: dict[str, int]) -> dict[str, float]:
    """CPU seconds each root's tree has used so far."""
    return _tree_sum(roots, _cpu)


class MemorySampler(threading.Thread):
    """Samples the processes ``roots()`` names (it may name others over time) until :meth:`stop`.

    ``stack`` names which roots count in the stack's total (the load generator, for one, does not).
    """

    def __init__(self, roots: Callable[[], dict[str, int]], stack: Callable[[str], bool], interval: float = 0.5):
        super().__init__(name="memory", daemon=True)
        self.roots = roots
        self.in_stack = stack
        self.interval = interval
        self.peaks: dict[str, float] = defaultdict(float)
        self.stack_members: set[str] = set()
        self.stack_peak = 0.0
        self.samples = 0
        self._halt = threading.Event()

    def run(self) -> None:
        while not self._halt.is_set():
            self.sample()
            self._halt.wait(self.interval)

    def sample(self) -> None:
        found = tree_rss(self.roots())
        for name, rss in found.items():
            self.peaks[name] = max(self.peaks[name], rss)
        self.stack_members.update(name for name in found if self.in_stack(name))
        self.stack_peak = max(self.stack_peak, sum(rss for name, rss in found.items() if self.in_stack(name)))
        self.samples += 1

    def stop(self) -> None:
        self._halt.set()
        self.join()

    def report(self) -> dict[str, object]:
        return {
            "stack_peak_rss_gib": round(self.stack_peak / GIB, 3),
            "peak_rss_gib": {name: round(rss / GIB, 3) for name, rss in sorted(self.peaks.items())},
            "in_stack": sorted(self.stack_members),
            "samples": self.samples,
            "interval_s": self.interval,
        }
