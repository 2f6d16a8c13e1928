"""Resident memory and CPU time of process trees."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

from bench.processes import MemorySampler, tree_cpu, tree_rss

HOLD_64_MIB = "import time; block = bytearray(64 * 2**20); time.sleep(60)"


@pytest.fixture
def child() -> Iterator[int]:
    process = subprocess.Popen([sys.executable, "-c", HOLD_64_MIB])
    try:
        for _ in range(100):  # until the child holds its block
            if tree_rss({"child": process.pid})["child"] > 64 * 2**20:
                break
            time.sleep(0.05)
        yield process.pid
    finally:
        process.kill()
        process.wait()


def test_a_tree_counts_its_children_but_not_other_roots(child: int) -> None:
    alone = tree_rss({"me": os.getpid()})["me"]
    both = tree_rss({"me": os.getpid(), "child": child})
    assert both["child"] > 64 * 2**20
    assert both["me"] < alone  # the child is its own root now, no longer part of mine
    assert alone - both["me"] == pytest.approx(both["child"], rel=0.1)


def test_the_stack_peak_sums_its_members_at_one_instant(child: int) -> None:
    sampler = MemorySampler(lambda: {"me": os.getpid(), "child": child}, lambda name: name == "child")
    sampler.sample()
    report = sampler.report()
    assert report["in_stack"] == ["child"]
    assert report["stack_peak_rss_gib"] == pytest.approx(sampler.peaks["child"] / 2**30, abs=1e-3)
    assert sampler.peaks["me"] > 0


def test_cpu_time_of_a_busy_child_counts_in_its_tree() -> None:
    busy = subprocess.Popen(
        [sys.executable, "-c", "import time\nend = time.time() + 0.5\nwhile time.time() < end: pass"]
    )
    busy.wait()
    # Reaped: its CPU time is now its parent's "children" time, still inside this process's tree.
    assert tree_cpu({"me": os.getpid()})["me"] >= 0.4
