"""How `cryptolake up` restarts its children: backoff, a budget per window, and the failures no restart fixes."""

from __future__ import annotations

import json
import os
import sys
import threading
from pathlib import Path
from types import SimpleNamespace

import pyarrow as pa
import pytest

from core import events
from core.settings import Settings
from cryptolake import cli, lake
from cryptolake.local.procs import ManagedProcess, ServiceError
from cryptolake.local.supervisor import Failures, RestartPolicy, Supervisor
from cryptolake.runner import ONE_JVM, Pipeline, Source
from tests.ingestion.harness import wait_until

HOUR = 3600.0
POLICY = RestartPolicy(budget=3, window=HOUR, first_delay=5.0, max_delay=60.0)


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


def exits(code: int, *lines: str) -> list[str]:
    """A child that prints ``lines`` and exits with ``code``."""
    return [sys.executable, "-c", f"import sys; print(*{list(lines)!r}, sep='\\n'); sys.exit({code})"]


def error_line(event: str, **fields: str) -> str:
    return json.dumps({"ts": "2026-12-07T12:00:00.000Z", "level": "error", "event": event, **fields})


def test_the_delay_doubles_from_the_first_up_to_its_cap() -> None:
    assert [POLICY.delay(attempt) for attempt in range(1, 7)] == [5.0, 10.0, 20.0, 40.0, 60.0, 60.0]
    assert RestartPolicy(budget=10_000, window=HOUR).delay(10_000) == 300.0  # no overflow however many


def test_failures_count_within_the_window_only() -> None:
    failures = Failures(POLICY)
    assert [failures.add(t) for t in (0.0, 10.0, 20.0)] == [1, 2, 3]
    assert failures.add(HOUR + 15.0) == 2  # those at 0 and 10 have left the window; 20 and this one remain
    assert failures.add(3 * HOUR) == 1


def test_the_settings_give_the_budget_and_the_window() -> None:
    policy = RestartPolicy.of(Settings(restart_budget=4, restart_window="30 minutes"))
    assert (policy.budget, policy.window) == (4, 1800.0)


def supervised(tmp_path: Path, argv: list[str], clock: Clock, lines: list[str]) -> tuple[Supervisor, ManagedProcess]:
    process = ManagedProcess("child", tmp_path / "child.pid", tmp_path / "child.log", marker=str(tmp_path))
    supervisor = Supervisor(POLICY, clock, report=lines.append)

    def start() -> None:
        process.spawn([*argv, str(tmp_path)], os.environ, tmp_path)

    supervisor.watch(process, start)
    start()
    return supervisor, process


def exited(process: ManagedProcess) -> None:
    wait_until(lambda: process.running_pid() is None, f"{process.name} exited", timeout=60)


def test_a_child_that_exits_is_started_again_after_its_delay_with_a_line_saying_why(tmp_path: Path) -> None:
    clock, lines = Clock(), []
    argv = exits(3, "starting", error_line("the Kafka producer failed for good", error="broker gone\ntraceback"))
    supervisor, process = supervised(tmp_path, argv, clock, lines)
    try:
        exited(process)
        assert supervisor.check() == []  # noted, not started yet: the delay has not passed
        assert lines == [
            "child exited with code 3: the Kafka producer failed for good: broker gone; restart 1 of 3 within 1 h, "
            "in 5 s"
        ]
        clock.now += 4.9
        assert supervisor.check() == []
        clock.now += 0.1
        assert supervisor.check() == ["child"]
        assert supervisor.restarts == {"child": 1}
        exited(process)
        supervisor.check()
        assert lines[-1].endswith("restart 2 of 3 within 1 h, in 10 s")
    finally:
        process.stop()
    assert process.log.read_text().count("starting child ===") == 2  # the banner of each spawn


def test_a_child_that_fails_more_often_than_the_budget_allows_ends_the_supervision(tmp_path: Path) -> None:
    clock, lines = Clock(), []
    supervisor, process = supervised(tmp_path, exits(1, "ERROR disk full"), clock, lines)
    try:
        for _ in range(POLICY.budget):
            exited(process)
            supervisor.check()
            clock.now += 60.0  # past any delay, well within the window
            assert supervisor.check() == ["child"]
        exited(process)
        with pytest.raises(ServiceError) as raised:
            supervisor.check()
    finally:
        process.stop()
    assert len(lines) == POLICY.budget
    assert "child exited with code 1: ERROR disk full; it failed 4 times within 1 h" in str(raised.value)
    assert "CRYPTOLAKE_RESTART_BUDGET" in str(raised.value)


@pytest.mark.parametrize(
    ("argv", "reason"),
    [
        (exits(2, error_line("bad settings", error="CRYPTOLAKE_KAFKA_TOPIC: must be a topic name")), "bad settings"),
        (
            exits(1, error_line(events.QUERY_FAILED, error="KAFKA_DATA_LOSS", what_to_do="reset bronze first")),
            "reset bronze first",
        ),
    ],
    ids=["bad-setting", "data-loss"],
)
def test_a_failure_no_restart_fixes_ends_the_supervision_at_once(tmp_path: Path, argv: list[str], reason: str) -> None:
    clock, lines = Clock(), []
    supervisor, process = supervised(tmp_path, argv, clock, lines)
    try:
        exited(process)
        with pytest.raises(ServiceError) as raised:
            supervisor.check()
    finally:
        process.stop()
    assert lines == []
    assert reason in str(raised.value)
    assert "a restart cannot fix this" in str(raised.value)


def test_a_layer_failing_every_few_hours_is_restarted_for_ever(tmp_path: Path) -> None:
    # Each failure is the first of its window: however many there are, over days, the budget is never spent.
    clock = Clock()
    pipeline = Pipeline(Settings(local_home=str(tmp_path)), source=None)
    pipeline.clock = clock
    pipeline._commands[ONE_JVM] = exits(1)
    pipeline.start()
    try:
        for failure in range(1, 13):
            exited(pipeline.children[ONE_JVM])
            clock.now += 3 * HOUR
            pipeline.restart_failed()
            clock.now += 60.0
            pipeline.restart_failed()
            assert pipeline.restarts[ONE_JVM] == failure
    finally:
        pipeline.stop()


def test_an_ingestor_that_exits_is_restarted_and_up_goes_on(tmp_path: Path) -> None:
    clock, lines = Clock(), []
    pipeline = Pipeline(Settings(local_home=str(tmp_path)), source=Source(kind="synthetic"), restart_policy=POLICY)
    pipeline.clock = clock
    pipeline._commands = {"ingestor": exits(3, error_line("the reason it stopped"))}
    pipeline.start()
    pipeline.supervisor.report = lines.append
    try:
        exited(pipeline.children["ingestor"])
        assert pipeline.restart_failed() == []
        clock.now += POLICY.first_delay
        assert pipeline.restart_failed() == ["ingestor"]
    finally:
        pipeline.stop()
    assert lines == ["ingestor exited with code 3: the reason it stopped; restart 1 of 3 within 1 h, in 5 s"]


def test_up_exits_with_code_1_and_the_reason_once_a_child_has_spent_its_budget(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(cli, "STATUS_SECONDS", 0.05)
    monkeypatch.setattr(lake, "read_newest_bars", lambda _settings, count: pa.table({}))
    policy = RestartPolicy(budget=2, window=HOUR, first_delay=0.0, max_delay=0.0)
    pipeline = Pipeline(Settings(local_home=str(tmp_path)), source=None, restart_policy=policy)
    pipeline._commands[ONE_JVM] = exits(1, "ERROR out of memory")
    pipeline.start()
    view = SimpleNamespace(refresh=lambda *_args: None)
    outcome: list[int] = []
    try:
        watching = threading.Thread(target=lambda: outcome.append(cli._watch(pipeline, view, threading.Event())))
        watching.start()
        watching.join(timeout=120)
    finally:
        pipeline.stop()
    assert outcome == [1], "up did not end within 120 s"
    out, err = capsys.readouterr()
    assert out.count(f"{ONE_JVM} exited with code 1: ERROR out of memory; restart") == 2
    assert err.startswith(f"error: {ONE_JVM} exited with code 1: ERROR out of memory; it failed 3 times within 1 h")


def test_a_child_whose_log_was_rotated_still_gives_the_reason_it_exited(tmp_path: Path) -> None:
    """Where this run's lines start in the log goes back to 0 once rotation empties it: past the end, the reason of
    the next exit would be missed."""
    clock, lines = Clock(), []
    ran, go = tmp_path / "ran", tmp_path / "go"
    script = (
        "import os, sys, time\n"
        f"if not os.path.exists({str(ran)!r}):\n"
        f"    open({str(ran)!r}, 'w').close()\n"
        "    print('filler ' * 20_000, flush=True)\n"
        "    sys.exit(1)\n"
        f"while not os.path.exists({str(go)!r}): time.sleep(0.05)\n"
        f"print({error_line('the Kafka producer failed for good', error='broker gone')!r}, flush=True)\n"
        "sys.exit(3)\n"
    )
    supervisor, process = supervised(tmp_path, [sys.executable, "-c", script], clock, lines)
    try:
        exited(process)
        supervisor.check()
        clock.now += 5.0
        assert supervisor.check() == ["child"]  # its second run starts past the first one's 140 kB
        assert supervisor.rotate_logs(100_000, keep=1) == ["child"]
        assert supervisor.rotate_logs(100_000, keep=1) == []  # emptied: under the limit now
        go.touch()
        exited(process)
        supervisor.check()
    finally:
        process.stop()
    assert lines[-1] == (
        "child exited with code 3: the Kafka producer failed for good: broker gone; restart 2 of 3 within 1 h, in 10 s"
    )
    assert "filler" in process.log.with_name("child.log.1").read_text()
