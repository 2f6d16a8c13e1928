"""The waits of tier 2 (controlplane.wait_for with progress): no new state for the stall ends them with the
explanation; a state seen before, as in a back-off loop, is no progress; new states keep them going."""

from __future__ import annotations

import itertools
import time

import pytest

from tests.k8s import controlplane

STALL = 0.5


def test_a_wait_whose_states_only_repeat_fails_after_the_stall_with_the_explanation() -> None:
    states = itertools.cycle(["waiting: CrashLoopBackOff", "running", "terminated: Error"])
    started = time.monotonic()
    with pytest.raises(controlplane.ControlPlaneError, match="no progress") as failed:
        controlplane.wait_for(
            "the pod", lambda: False, 60, 0.01, progress=lambda: next(states), stall=STALL, explain=lambda: "why"
        )
    assert STALL < time.monotonic() - started < 30
    assert str(failed.value).endswith("why")


def test_a_wait_with_new_states_outlasts_the_stall_until_its_check_holds() -> None:
    counter = itertools.count()
    deadline = time.monotonic() + 4 * STALL
    controlplane.wait_for(
        "rows", lambda: time.monotonic() > deadline, 60, 0.01, progress=lambda: next(counter), stall=STALL
    )


def test_a_wait_past_its_timeout_says_so_with_the_explanation() -> None:
    counter = itertools.count()
    with pytest.raises(controlplane.ControlPlaneError, match="timed out after") as failed:
        controlplane.wait_for(
            "rows", lambda: False, 0.2, 0.01, progress=lambda: next(counter), stall=60, explain=lambda: "why"
        )
    assert str(failed.value).endswith("why")
