"""The soak's page accounting (session 37, pages37): extra pages classified against replay's parents, the workers'
topology as the set ships it, and a drain that waits until the workers' group has read `incidents` to its end."""

from __future__ import annotations

import asyncio
import sys
from collections import Counter
from pathlib import Path

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.structs import OffsetAndMetadata

from stream.broker import create_topics_sync, start_broker

from .paths import MICROSS, ROOT

sys.path.insert(0, str(ROOT / "benchmarks"))

from soak import build_input, drain_over, incidents_lag, incidents_read, read_through, topology_env  # noqa: E402
from soak_pages import classify, lost_in_trace, reached  # noqa: E402
from soak_trace import covered, unnamed  # noqa: E402


def test_extra_pages_are_split_up_to_replays_parents_and_beyond_past_them() -> None:
    pages = {"1": 1, "2": 3, "3": 4, "4": 1}
    parents = Counter({"1": 1, "2": 3, "3": 2, "4": 3})
    c = classify(pages, parents)
    assert (c["pages"], c["extra"], c["split"], c["beyond"]) == (9, 5, 3, 2)
    assert c["beyond_faults"] == {"3": (4, 2)} and c["fewer_pages_than_parents"] == {"4": (1, 3)}
    assert c["faults_paged_2plus"] == 2


def test_a_trace_names_the_routing_records_before_the_restart_whose_new_children_no_cause_named() -> None:
    def route(o: int, *evs: tuple[str, int]) -> dict[str, object]:
        return {"t": "route", "gen": 0, "p": 2, "o": o, "ts": 100.0 + o, "evs": [[c, "k", s, "firing", 0, 0, 0]
                                                                                for c, s in evs]}
    lines = [route(0, ("a", 1)), route(1, ("a", 2), ("b", 1), ("c", 1)), route(2, ("d", 2)),
             {"t": "inc", "gen": 0, "p": 0, "o": 0, "k": "ev", "id": "b"},
             {"t": "inc", "gen": 1, "p": 0, "o": 0, "k": "ev", "id": "c"},
             {"t": "inc", "gen": 1, "p": 1, "o": 0, "k": "par", "id": "par-1", "ch": ["a"]},
             {**route(0, ("b", 1)), "gen": 1}]
    # "a" was named; "d" is no new child (seq 2: its first event came before the trace); a record after the restart
    # is not looked at; "b" the trace saw on incidents before the restart, "c" only after.
    assert unnamed(lines) == [(2, 1, 101.0, ["b", "c"], 2, ["b"])]
    lines.append({"t": "inc", "gen": 1, "p": 1, "o": 1, "k": "asg", "id": "b", "parent": "par-1"})
    assert unnamed(lines) == [(2, 1, 101.0, ["c"], 2, [])]


def test_a_trace_says_when_stage_2_s_progress_first_covered_an_incident() -> None:
    def progress(gen: int, p: int, ts: float, *decided: float) -> dict[str, object]:
        return {"t": "inc", "gen": gen, "p": p, "o": 0, "ts": ts, "k": "Progress",
                "v": {"decided": {str(i): d for i, d in enumerate(decided)}, "late": []}}
    lines = [{"t": "inc", "gen": 0, "p": 1, "o": 0, "k": "ev", "id": "a", "fs": 50.0},
             progress(0, 1, 1.0, 60.0, 40.0),  # the lowest routing partition is behind it
             progress(0, 0, 2.0, 60.0, 60.0),  # another partition of incidents
             progress(1, 1, 3.0, 60.0, 55.0), progress(1, 1, 4.0, 70.0, 70.0)]
    assert covered(lines, {"a"}) == [("a", 1, 50.0, 1, 3.0)]
    assert covered(lines[:3], {"a"}) == [("a", 1, 50.0, None, None)]


def test_the_workers_get_the_sets_topology_unless_told_none() -> None:
    assert topology_env("set") == {"AIOPS_STAGE2_TOPOLOGY": str((MICROSS / "topology.json").resolve())}
    assert topology_env("none") == {}
    assert topology_env("/x/t.yaml") == {"AIOPS_STAGE2_TOPOLOGY": "/x/t.yaml"}


def test_incidents_count_as_read_only_once_the_group_committed_them_to_the_end(tmp_path: Path) -> None:
    """The drain's condition: under load notify ran minutes behind a quiet pager (46 and 102 faults counted unpaged)."""
    broker = start_broker(log_path=tmp_path / "tansu.log")
    try:
        topic, group = "t-read.incidents", "t-read"
        create_topics_sync(broker.bootstrap, {topic: 2})

        async def write_then_commit(upto: dict[int, int]) -> None:
            producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap)
            await producer.start()
            try:
                for p in (0, 1):
                    for _ in range(3):
                        await producer.send_and_wait(topic, b"{}", partition=p)
            finally:
                await producer.stop()
            if not upto:
                return
            consumer = AIOKafkaConsumer(bootstrap_servers=broker.bootstrap, group_id=group, enable_auto_commit=False)
            await consumer.start()
            try:
                consumer.assign([TopicPartition(topic, p) for p in upto])
                await consumer.commit({TopicPartition(topic, p): OffsetAndMetadata(o, "") for p, o in upto.items()})
            finally:
                await consumer.stop()

        asyncio.run(write_then_commit({}))
        assert not incidents_read(broker.bootstrap, group, topic, 2)  # nothing committed
        asyncio.run(write_then_commit({0: 6, 1: 5}))  # 6 records on each now: partition 1 one behind
        assert not incidents_read(broker.bootstrap, group, topic, 2)
        assert incidents_lag(broker.bootstrap, group, topic, 2) == 1
        asyncio.run(write_then_commit({0: 9, 1: 9}))  # committed to the end (9 on each)
        assert incidents_read(broker.bootstrap, group, topic, 2)
    finally:
        broker.stop()


def test_the_drain_waits_while_anything_moves_and_gives_up_after_a_stall_or_the_cap() -> None:
    """soak38: a fixed 420 s drain gave up on a loaded run while notify still read and paged (f2: 1,428 accepted
    alerts not yet in an incident); the drain now times a stall, not the whole wait."""
    assert not drain_over(now=1000.0, begun=0.0, moved_at=700.0, stall_s=420.0, cap_s=2400.0)  # moving: go on
    assert drain_over(now=1120.0, begun=0.0, moved_at=700.0, stall_s=420.0, cap_s=2400.0)  # 420 s without a move
    assert drain_over(now=2400.0, begun=0.0, moved_at=2399.0, stall_s=420.0, cap_s=2400.0)  # the cap, whatever moves


def test_incidents_count_as_read_only_while_the_lag_stays_0() -> None:
    """stuck40: after the broker restart the new `incidents` was empty for a moment (lag 0); the drain kept that
    first 0 and called "drained" a run whose group then never committed two partitions (535 records behind)."""
    since = None
    for now, behind in [(0.0, 120), (1.0, 0), (2.0, 535), (3.0, 535)]:  # q5's samples: 0 between two reads
        since = read_through(since, behind, now)
    assert since is None  # behind again: not read
    since = read_through(None, 0, 10.0)
    assert read_through(since, None, 11.0) == 10.0  # the broker did not answer: nothing learnt
    assert read_through(since, 0, 12.0) == 10.0  # still at the end: since the first 0 of the run of 0s



def test_the_alerts_a_chaos_run_lost_with_the_broker_are_found_from_its_trace_and_left_out_of_the_replay() -> None:
    """child42: quick soak t5 paged fault 4 twice, 1 "beyond replay's parents" of the whole input; 298 accepted alerts
    went with the broker (15 of fault 4's last among them), and replay of the alerts that reached an incident makes
    the same lone causes the stream made. A report before `in_no_incident_all` gets that list from a trace: the soak's
    own rule on the input placed as the soak placed it (its end found from the first flush alert's incident)."""
    data = build_input(8, 1800.0, end_at=1_790_000_000.0)
    gone = {a["fingerprint"] for a in data.alerts[200:205]}
    lines = [{"t": "inc", "k": "ev", "key": data.keys[a["fingerprint"]], "fs": float(a["starts_at"]),
              "ls": float(a["starts_at"]), "id": f"inc-{i}"}
             for i, a in enumerate(data.alerts + data.flush) if a["fingerprint"] not in gone]
    assert lost_in_trace(8, 1800.0, lines) == sorted(gone)
    kept = reached(data.alerts, gone)
    assert [a["fingerprint"] for a in kept] == [a["fingerprint"] for a in data.alerts if a["fingerprint"] not in gone]
