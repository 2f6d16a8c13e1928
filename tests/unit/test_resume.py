"""Where `cryptolake resume bronze` has bronze start each partition: past what bronze holds, at what Kafka holds, the
offsets in between named as lost; and where Kafka's offsets cannot follow bronze's, a refusal."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from cryptolake.resume import PartitionStart, plan, resume_point

TOPIC = "crypto.trades"
NOW = datetime(2026, 12, 7, 22, tzinfo=UTC)


def _starts(starts: list[PartitionStart]) -> dict[int, tuple[int, int]]:
    """Per partition: where bronze starts, and how many offsets are lost."""
    return {s.partition: (s.start, s.lost) for s in starts}


def test_a_table_ahead_of_kafkas_earliest_goes_on_after_its_highest_offset() -> None:
    starts = plan(TOPIC, {0: 41, 1: 9}, {0: (10, 50), 1: (0, 10)})
    assert _starts(starts) == {0: (42, 0), 1: (10, 0)}
    assert resume_point(starts, NOW)["gaps"] == [] and resume_point(starts, NOW)["lost"] == 0


def test_a_table_behind_kafkas_earliest_starts_at_the_earliest_and_names_the_gap() -> None:
    starts = plan(TOPIC, {0: 19, 1: 99}, {0: (25, 30), 1: (100, 140)})
    assert _starts(starts) == {0: (25, 5), 1: (100, 0)}
    gap = f"{TOPIC}-0: bronze holds up to offset 19, Kafka holds 25-29: offsets 20-24 are gone (5)"
    assert starts[0].describe() == gap
    point = resume_point(starts, NOW)
    assert point["starting_offsets"] == {TOPIC: {"0": 25, "1": 100}}
    assert point["gaps"] == [{"topic": TOPIC, "partition": 0, "from": 20, "to": 24}] and point["lost"] == 5


def test_a_partition_bronze_holds_nothing_of_starts_at_kafkas_earliest_counting_from_offset_0() -> None:
    starts = plan(TOPIC, {0: 5}, {0: (0, 6), 1: (0, 8), 2: (3, 8)})
    assert _starts(starts) == {0: (6, 0), 1: (0, 0), 2: (3, 3)}
    assert starts[1].describe().startswith(f"{TOPIC}-1: bronze holds none, Kafka holds 0-7")


def test_new_partitions_are_each_named_in_the_starting_offsets_as_spark_wants_them_all() -> None:
    point = resume_point(plan(TOPIC, {0: 5, 1: 7}, {0: (0, 6), 1: (0, 8), 2: (0, 0), 3: (0, 4)}), NOW)
    assert point["starting_offsets"] == {TOPIC: {"0": 6, "1": 8, "2": 0, "3": 0}}


def test_an_empty_bronze_starts_every_partition_at_kafkas_earliest() -> None:
    assert _starts(plan(TOPIC, {}, {0: (7, 9), 1: (0, 0)})) == {0: (7, 7), 1: (0, 0)}


def test_a_table_beyond_kafkas_end_is_a_recreated_topic_and_refused() -> None:
    with pytest.raises(ValueError, match=r"crypto.trades-0 up to 99, Kafka's end is 40.*cryptolake reset bronze"):
        plan(TOPIC, {0: 99, 1: 3}, {0: (0, 40), 1: (0, 10)})


def test_partitions_bronze_holds_that_kafka_lacks_are_a_recreated_topic_and_refused() -> None:
    with pytest.raises(ValueError, match=r"partitions 1, 2 of crypto.trades.*cryptolake reset bronze"):
        plan(TOPIC, {0: 3, 1: 3, 2: 3}, {0: (0, 10)})
