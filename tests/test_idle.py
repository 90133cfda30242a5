"""The idle clocks the folding agents share (stream/idle.py): which idle step is due when, on fixed times; and what
counts as silence (`Pipeline.input_waiting`): nothing left to read, not nothing read lately."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from faust.types import TP

from correlator.config import DEFAULT_CONFIG
from stream.idle import IdleClocks
from stream.pipeline import NormalizeStage, Pipeline


@pytest.mark.parametrize(("quiet_s", "flush", "advance"), [
    (0.5, False, None),     # not quiet long enough for anything
    (1.0, True, None),      # the flush step, event time stays
    (9.9, True, None),
    (10.0, True, 10.0),     # the first advance covers the whole silence
    (25.0, True, 25.0),
])
def test_steps_due_after_a_silence(quiet_s: float, flush: bool, advance: float | None) -> None:
    clocks = IdleClocks(flush_s=1.0, advance_s=10.0)
    clocks.mark_input(3, now=100.0)
    assert clocks.flush_due(3, 100.0 + quiet_s) is flush
    assert clocks.advance_due(3, 100.0 + quiet_s) == advance


def test_flush_once_per_silence_and_advance_tick_by_tick() -> None:
    clocks = IdleClocks(flush_s=1.0, advance_s=10.0)
    clocks.mark_input(0, now=0.0)
    assert clocks.flush_due(0, 2.0) and not clocks.flush_due(0, 3.0)  # once per silence
    assert clocks.advance_due(0, 12.0) == 12.0
    assert clocks.advance_due(0, 12.5) == 0.5  # then by the time since the last advance
    clocks.mark_input(0, now=13.0)  # input restarts both clocks
    assert clocks.advance_due(0, 14.0) is None and clocks.flush_due(0, 14.0)


def test_unknown_and_dropped_partitions_are_never_due() -> None:
    clocks = IdleClocks(flush_s=1.0, advance_s=10.0)
    assert not clocks.flush_due(7, 1_000.0) and clocks.advance_due(7, 1_000.0) is None
    clocks.mark_input(1, now=0.0)
    clocks.drop([1])
    assert not clocks.flush_due(1, 100.0) and clocks.advance_due(1, 100.0) is None


# ---------------------------------------------------------------- silence means nothing left to read


class _Consumer:
    """The end offsets a consumer last saw; a partition not assigned raises, as aiokafka's does."""

    def __init__(self, ends: dict[TP, int]) -> None:
        self.ends = ends

    def highwater(self, tp: TP) -> int:
        if tp not in self.ends:
            raise AssertionError("Partition is not assigned")
        return self.ends[tp]


class _Topic:
    def __init__(self, name: str) -> None:
        self.name = name

    def get_topic_name(self) -> str:
        return self.name


def _pipeline(ends: dict[TP, int], engines: tuple[int, ...] = (0, 1)) -> Pipeline:
    app = SimpleNamespace(consumer=_Consumer(ends), assignor=SimpleNamespace(assigned_actives=lambda: set(ends)))
    pipe = Pipeline(app=app, config=DEFAULT_CONFIG, table=None,
                    topics={"alerts": _Topic("alerts"), "alerts_raw": _Topic("raw")})  # type: ignore[dict-item]
    pipe.engines = {p: None for p in engines}  # type: ignore[misc]
    return pipe


def _read(pipe: Pipeline, topic: str, partition: int, offset: int) -> None:
    pipe.note_read([SimpleNamespace(message=SimpleNamespace(topic=topic, partition=partition, offset=offset))])  # type: ignore[list-item]


def test_a_partition_read_to_its_end_offset_is_silent_one_behind_it_is_not() -> None:
    pipe = _pipeline({TP("alerts", 0): 10, TP("alerts", 1): 12})
    assert pipe.input_waiting() == set()  # nothing read here yet: not known to wait
    _read(pipe, "alerts", 0, 9)
    _read(pipe, "alerts", 1, 9)
    assert pipe.input_waiting() == {1}  # offsets 10 and 11 of partition 1 are still in the log
    _read(pipe, "alerts", 1, 11)
    assert pipe.input_waiting() == set()


def test_raw_records_waiting_for_normalize_keep_every_partition_from_idling() -> None:
    pipe = _pipeline({TP("alerts", 0): 10, TP("alerts", 1): 10, TP("raw", 2): 7})
    _read(pipe, "alerts", 0, 9)
    _read(pipe, "raw", 2, 3)
    assert pipe.input_waiting() == {0, 1}
    _read(pipe, "raw", 2, 6)
    assert pipe.input_waiting() == set()


def test_a_partition_no_longer_assigned_does_not_wait() -> None:
    pipe = _pipeline({TP("alerts", 0): 10})
    _read(pipe, "alerts", 1, 3)  # read before a rebalance took it away: its end offset is not known here
    _read(pipe, "raw", 0, 3)
    assert pipe.input_waiting() == set()
    _read(pipe, "alerts", 0, 5)
    pipe.drop([0])
    assert (pipe.alerts_topic, 0) not in pipe.read_to


def test_a_raw_partition_revoked_and_given_back_does_not_wait_on_what_its_other_owner_read() -> None:
    # This worker read raw partition 2 to offset 4, lost it, and got it back after another owner read it to 9:
    # with nothing new to read, nothing waits (a stale position would hold every partition's idleness back).
    ends = {TP("alerts", 0): 10, TP("raw", 2): 5}
    pipe = _pipeline(ends)
    _read(pipe, "alerts", 0, 9)
    _read(pipe, "raw", 2, 4)
    assert pipe.input_waiting() == set()
    NormalizeStage(pipe, step_bytes=1 << 20).drop({2})
    ends[TP("raw", 2)] = 10  # given back: the other owner's records are in the log and committed
    assert pipe.input_waiting() == set()


def test_a_partition_started_without_input_flushes_and_advances_as_one_whose_input_stopped_then() -> None:
    """An engine built after a broker loss with no input yet (`Pipeline.census_lost`): without a start its partition
    never flushed, so it never told stage 2 it was idle and stage 2 waited on its mark for good (census41)."""
    clocks = IdleClocks(flush_s=1.0, advance_s=10.0)
    assert not clocks.flush_due(0, 100.0) and not clocks.flush_due(0, 1000.0)  # no input, no clock: never
    clocks.start(0, 100.0)
    assert not clocks.flush_due(0, 100.5)
    assert clocks.flush_due(0, 101.0) and clocks.flushed(0)
    assert clocks.advance_due(0, 105.0) is None and clocks.advance_due(0, 110.0) == 10.0
    clocks.mark_input(1, 200.0)
    clocks.start(1, 300.0)  # input came first: its clock stands
    assert clocks.flush_due(1, 201.0)
