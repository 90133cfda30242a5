"""Hostile records written straight onto every consumed topic of a live worker on the embedded broker.

For each consumed topic (`alerts.raw`, `alerts`, `tickets.raw`, `incidents`, the stage-2 route topic) a batch of
bad records, named ones (2 MB and 20 MB of junk, null key, null value, empty, random bytes, invalid UTF-8, JSON of
the wrong shape) and hypothesis-drawn ones (random bytes, random JSON, the topic's own document with one field
replaced by something random), is written in one go, then one good record. Then the count must hold:
records in = processed + dead-lettered. Dead-lettered: exactly the records the agent's own decoder refuses,
one letter each, its original bytes (or a bounded reference with size and sha256 when too large); processed:
every other record, with the group's committed offset past every record written (nothing is acknowledged before
it is handled or its letter delivered). The worker stays up, no batch is left unacknowledged, and the good record
afterwards is processed. One broker and one worker serve the whole module.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from correlator.sources import detect_source, parse
from correlator.triage.lifecycle import TicketResolution, parse_ticket_input
from stream.batches import MAX_RECORD_BYTES, PARTS_PER_OFFSET, decode_batch
from stream.broker import EmbeddedBroker
from stream.pipeline import source_of_key
from stream.sends import key_partition
from stream.settings import Settings
from stream.stage2_agent import decode_routed
from stream.tickets import parse_incident

from .test_ingest import read_all
from .workers import Deployment, WorkerProc

LIMITS = Settings()
WHOLE_BYTES, HEAD_BYTES = LIMITS.deadletter_max_bytes, LIMITS.deadletter_head_bytes
NOW = time.time()

Record = tuple[bytes | None, bytes | None]


@dataclass
class Stack:
    """The module's deployment and its one worker (stage 2 on, so its route topic is consumed too)."""

    dep: Deployment
    worker: WorkerProc

    def topic_name(self, field: str) -> str:
        return f"{self.dep.app_id}-stage2-route" if field == "route" else self.dep.topic(field)


@pytest.fixture(scope="module")
def stack(broker: EmbeddedBroker, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    dep = Deployment(broker, tmp_path_factory.mktemp("fuzz"))
    dep.extra_env = {**dep.extra_env, "AIOPS_STAGE2": "true"}
    dep.create_topics()
    worker = dep.start_worker()
    try:
        worker.wait_web()
        worker.wait_partitions(4)
        yield Stack(dep, worker)
    finally:
        worker.stop()


# -- what each agent's decoder says of a record: True when it refuses it (the oracle) -----------------------------

def _refuses(decode: Callable[[Record], object]) -> Callable[[Record], bool]:
    def refused(record: Record) -> bool:
        try:
            decode(record)
        except Exception:  # noqa: BLE001 - any refusal: the agent dead-letters whatever its decoder raises
            return True
        return False
    return refused


def _raw(record: Record) -> object:
    key, value = record
    body = value or b""
    source = source_of_key(key)
    return parse(detect_source(body) if source == "auto" else source, body)


def _ticket(record: Record) -> object:
    item = parse_ticket_input(record[1])
    if isinstance(item, TicketResolution):  # no fuzzed ticket exists: a resolution of an unknown one is refused
        raise ValueError("resolution of an unknown ticket")
    return item


def _bounded(decode: Callable[[Record], object]) -> Callable[[Record], object]:
    """Every agent but normalize first refuses a record larger than one it may write (`MAX_RECORD_BYTES`)."""
    def bounded(record: Record) -> object:
        if len(record[0] or b"") + len(record[1] or b"") > MAX_RECORD_BYTES:
            raise ValueError("record_too_large")
        return decode(record)
    return bounded


ORACLES: dict[str, Callable[[Record], bool]] = {
    "alerts_raw": _refuses(_raw),
    "alerts": _refuses(_bounded(lambda r: decode_batch(r[1]))),
    "tickets_raw": _refuses(_bounded(_ticket)),
    "incidents": _refuses(_bounded(lambda r: parse_incident(r[1]))),
    "route": _refuses(_bounded(lambda r: decode_routed(r[1]))),
}


# -- the topics' own documents, good ones and templates to break --------------------------------------------------

def good_alert(tag: str) -> dict[str, Any]:
    return {"starts_at": NOW, "labels": {"alertname": "FuzzProbe", "service": f"fuzz-{tag}"}, "severity": "warning"}


def good_incident(tag: str) -> dict[str, Any]:
    return {"kind": "opened", "incident_id": f"inc-fuzz-{tag}", "seq": 1, "key": f"fuzz-{tag}/probe",
            "service": f"fuzz-{tag}", "symptom": "probe", "status": "firing", "first_seen": NOW, "last_seen": NOW,
            "window_start": NOW - NOW % 600, "alert_count": 1, "distinct_fingerprints": 1, "firing_count": 1,
            "duplicates": 0, "max_severity": "warning", "emitted_at": NOW}


def good_segment_batch(tag: str, source: tuple[int | None, int | None] = (None, None)) -> dict[str, Any]:
    """An `alerts` record as normalize writes it; with no source by default, as what `alerts.raw` holds varies (a
    source it does not hold is refused: `test_a_forged_source_offset_is_dead_lettered_and_skips_nothing`)."""
    return {"received_ms": int(NOW * 1000), "segments": [[*source, [
        {"f": f"fp-{tag}", "k": f"fuzz-{tag}/probe", "s": "firing", "v": "warning", "t": NOW, "e": None,
         "l": {"service": f"fuzz-{tag}"}}]]]}


def good_record(field: str, tag: str) -> Record:
    """A record the topic's agent processes, unique to `tag`."""
    if field == "alerts_raw":
        return b"generic", orjson.dumps(good_alert(tag))
    if field == "alerts":
        alert = parse("generic", orjson.dumps(good_alert(tag)))[0]
        return None, orjson.dumps(alert.model_dump(mode="json"))
    if field == "tickets_raw":
        return f"fuzz-{tag}".encode(), orjson.dumps({"ticket_id": f"fuzz-{tag}", "text": "BGP session flapping "
                                                     "between core routers", "created_at": NOW})
    if field == "incidents":
        return f"inc-fuzz-{tag}".encode(), orjson.dumps(good_incident(tag))
    return None, orjson.dumps([good_incident(tag)])


TEMPLATES: dict[str, Callable[[], Any]] = {
    "alerts_raw": lambda: good_alert("t"),
    "alerts": lambda: good_segment_batch("t"),
    "tickets_raw": lambda: orjson.loads(good_record("tickets_raw", "t")[1] or b""),
    "incidents": lambda: good_incident("t"),
    "route": lambda: [good_incident("t")],
}


def named_cases(field: str) -> list[Record]:
    """The named hostile records, and wrong-shape documents of the topic's own kind."""
    rng = random.Random(f"named-{field}")
    junk = bytes(rng.getrandbits(8) for _ in range(4096))
    cases: list[Record] = [
        (None, b"junk with a null key"), (b"generic", None), (None, None), (b"k", b""), (b"", b""),
        (b"k", junk[:512]), (b"\xff\xfe\xfd", b"\xff\xfe\xfd\xfc"), (b"k", b'{"a": "\xff\xfe"}'),
        (b"k", b"\x00" * 100), (b"k", b"[]"), (b"k", b"{}"), (b"k", b"null"), (b"k", b"true"), (b"k", b"1"),
        (b"k", b'"text"'), (b"k", b"1e400"), (b"k", b'{"x": NaN}'), (b"k", b"[" * 5000 + b"]" * 5000),
        (b"k", b'{"a": 1} trailing'), (b"k", b"\xef\xbb\xbf{}"), (b"generic", b'{"starts_at": "yesterday"}'),
        (b"alertmanager", b'{"version": "4", "alerts": "many"}'), (b"zabbix", b'{"eventid": []}'),
        (junk[:300] * 4000, b"{}"),  # a 1.2 MB key
        (b"k", junk * 512),  # 2 MB of junk
        (b"k", junk * 5120),  # 20 MB of junk
    ]
    template = TEMPLATES[field]()
    doc = template[0] if isinstance(template, list) else template
    for name in list(doc):
        wrongs: tuple[Any, ...] = (None, "x", -1, 1e300, [], {}, True)
        for wrong in wrongs:
            broken = dict(doc)
            broken[name] = wrong
            cases.append((b"k", orjson.dumps([broken] if isinstance(template, list) else broken)))
        cut = {k: v for k, v in doc.items() if k != name}
        cases.append((b"k", orjson.dumps([cut] if isinstance(template, list) else cut)))
    return cases


def _dumps(doc: Any) -> bytes:
    """JSON of a drawn document; the stdlib, as orjson refuses integers beyond 64 bits, which producers send."""
    return json.dumps(doc).encode()


_json = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=30),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=12)


def _mutated(field: str) -> st.SearchStrategy[bytes]:
    """The topic's own document with fields replaced or added by random JSON: the shape checks' hard cases."""
    def build(changes: dict[str, Any]) -> bytes:
        template = TEMPLATES[field]()
        doc = template[0] if isinstance(template, list) else template
        names = list(doc)
        for i, (name, value) in enumerate(changes.items()):
            doc[names[i % len(names)] if name.startswith("_") else name] = value
        return _dumps([doc] if isinstance(template, list) else doc)
    return st.dictionaries(st.sampled_from([f"_{i}" for i in range(8)] + ["extra", "labels", "segments"]),
                           _json, min_size=1, max_size=3).map(build)


def drawn_records(field: str) -> st.SearchStrategy[list[Record]]:
    keys = st.none() | st.binary(max_size=40) | st.sampled_from([b"generic", b"alertmanager", b"zabbix"])
    values = (st.none() | st.binary(max_size=600) | _json.map(_dumps) | _mutated(field)
              | st.text(max_size=200).map(lambda t: t.encode("utf-8", "surrogatepass")))
    return st.lists(st.tuples(keys, values), min_size=50, max_size=50, unique=True)


# -- the broker side: write, then read what happened --------------------------------------------------------------

async def _write(bootstrap: str, topic: str, records: list[Record], seed: str) -> list[tuple[int, int]]:
    """Write records as whole batches, each to a partition picked at random; their (partition, offset) in order.

    Through record batches, as a raw producer may write them: `AIOKafkaProducer.send` refuses a record with
    neither key nor value, which the protocol allows.
    """
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", max_request_size=64 * 1024 * 1024)
    await producer.start()
    try:
        partitions = sorted(await producer.partitions_for(topic))
        rng = random.Random(seed)
        chosen = [rng.choice(partitions) for _ in records]
        placed: list[tuple[int, int]] = []
        for partition in partitions:
            mine = [i for i, p in enumerate(chosen) if p == partition]
            if not mine:
                continue
            runs: list[tuple[int, list[int]]] = []
            run: list[int] = []
            batch = None
            for i in mine:
                key, value = records[i]
                if batch is None or batch.append(timestamp=None, key=key, value=value, headers=[]) is None:
                    if batch is not None:
                        runs.append(await _send_run(producer, batch, topic, partition, run))
                    batch, run = producer.create_batch(), [i]
                    batch.append(timestamp=None, key=key, value=value, headers=[])  # a first record always fits
                else:
                    run.append(i)
            runs.append(await _send_run(producer, batch, topic, partition, run))
            for base, run in runs:
                placed += [(i, base + n) for n, i in enumerate(run)]
    finally:
        await producer.stop()
    where = dict(placed)
    return [(chosen[i], where[i]) for i in range(len(records))]


async def _send_run(producer: Any, batch: Any, topic: str, partition: int, run: list[int]) -> tuple[int, list[int]]:
    batch.close()
    return (await (await producer.send_batch(batch, topic, partition=partition))).offset, run


async def committed_offsets(bootstrap: str, group: str, topic: str, partitions: list[int]) -> dict[int, int]:
    """The group's committed offsets (-1: none) by OffsetFetch of a member-less client of the group (Tansu 0.6.0
    answers the admin client's ListConsumerGroupOffsets with a response aiokafka cannot decode)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    await consumer.start()
    try:
        return {p: await consumer.committed(TopicPartition(topic, p)) or -1 for p in partitions}
    finally:
        await consumer.stop()


def wait_committed(stack: Stack, topic: str, written: list[tuple[int, int]], timeout: float = 60.0) -> None:
    """Until the worker's group has committed past every written record (Faust commits every 2.8 s)."""
    want: dict[int, int] = {}
    for partition, offset in written:
        want[partition] = max(want.get(partition, 0), offset + 1)
    deadline = time.monotonic() + timeout
    behind: dict[int, tuple[int, int]] = {}
    while time.monotonic() < deadline:
        committed = asyncio.run(committed_offsets(stack.dep.broker.bootstrap, stack.dep.app_id, topic, sorted(want)))
        behind = {p: (committed[p], o) for p, o in want.items() if committed[p] < o}
        if not behind:
            return
        assert stack.worker.proc.poll() is None, f"worker died:\n{stack.worker.tail()}"
        time.sleep(0.5)
    raise AssertionError(f"{topic}: committed behind what was written {behind}:\n{stack.worker.tail()}")


def consumed_bounds(stack: Stack, topic: str, agent: str, tries: int = 5) -> tuple[int, float, int]:
    """The records of the topic the group has committed past, the agent's `aiops_records_consumed_total` and the
    records on the topic, read in that order: the counter must lie between (the guard counts a batch before it
    acknowledges it, and the worker reads nothing but this topic's records). Read again, up to `tries` times,
    until nothing is read but not committed, when the counter must equal both (a heartbeat may fall in between).
    """
    bootstrap, group = stack.dep.broker.bootstrap, stack.dep.app_id
    for _ in range(tries):
        partitions = sorted(asyncio.run(_partitions(bootstrap, topic)))
        offsets = asyncio.run(committed_offsets(bootstrap, group, topic, partitions))
        counted = stack.worker.metric("aiops_records_consumed_total", agent=agent)
        held = [(r.partition, r.offset) for r in read_all(bootstrap, topic, quiet_s=1.0)]
        committed = sum(1 for p, o in held if o < offsets.get(p, -1))
        if committed == len(held):
            break
        time.sleep(1.0)
    return committed, counted, len(held)


async def _partitions(bootstrap: str, topic: str) -> set[int]:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        return set(await producer.partitions_for(topic))
    finally:
        await producer.stop()


def deadletters_of(stack: Stack, agent: str) -> float:
    total = 0.0
    for line in stack.worker.get("/metrics").splitlines():
        if line.startswith("aiops_deadletters_total{") and f'agent="{agent}"' in line:
            total += float(line.rpartition(" ")[2])
    return total


def letters_for(stack: Stack, topic: str, written: set[tuple[int, int]], agent: str
                ) -> dict[tuple[int, int], list[Any]]:
    """The dead letters one agent sent for the records written (another agent reading the topic, as the
    analytics store reads `incidents`, sends its own)."""
    out: dict[tuple[int, int], list[Any]] = {}
    for letter in read_all(stack.dep.broker.bootstrap, stack.dep.topic("deadletter"), quiet_s=1.0):
        h = {k: v.decode() for k, v in letter.headers}
        origin = (int(h["partition"]), int(h["offset"]))
        if h["topic"] == topic and origin in written and h["agent"] == agent:
            out.setdefault(origin, []).append(letter)
    return out


AGENTS = {"alerts_raw": "normalize", "alerts": "correlate", "tickets_raw": "triage", "incidents": "incident_sla",
          "route": "stage2_group"}
_named_done: set[str] = set()


def check_good_record_processed(stack: Stack, field: str, tag: str) -> None:
    """The good record written after the junk had its effect downstream."""
    if field in ("alerts_raw", "alerts"):
        want, topic = f"fuzz-{tag}", stack.dep.topic("incidents")
        test: Callable[[Any], bool] = lambda r: b'"kind":"opened"' in (r.value or b"") and want.encode() in r.value
    elif field == "tickets_raw":
        topic = stack.dep.topic("tickets_triaged")
        test = lambda r: r.key == f"fuzz-{tag}".encode()  # noqa: E731
    else:
        return  # incident clocks and stage-2 groups: processed = committed and not dead-lettered, checked above
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if any(test(r) for r in read_all(stack.dep.broker.bootstrap, topic, quiet_s=0.5)):
            return
        time.sleep(0.5)
    raise AssertionError(f"good {field} record {tag} had no effect:\n{stack.worker.tail()}")


@pytest.mark.parametrize("field", list(AGENTS))
@settings(max_examples=2, deadline=None, derandomize=True, database=None, phases=[Phase.generate],
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                 HealthCheck.function_scoped_fixture])
@given(drawn=st.data())
def test_every_record_is_processed_or_dead_lettered(stack: Stack, field: str, drawn: st.DataObject) -> None:
    records = drawn.draw(drawn_records(field), label="records")
    if field not in _named_done:  # the named cases (20 MB among them) once per topic, not per example
        records = named_cases(field) + records
        _named_done.add(field)
    assert len({r for r in records}) >= 50
    tag = f"{field.replace('_', '')}-{os.urandom(3).hex()}"
    records.append(good_record(field, tag))
    topic, agent = stack.topic_name(field), AGENTS[field]
    letters_before = deadletters_of(stack, agent)

    written = asyncio.run(_write(stack.dep.broker.bootstrap, topic, records, seed=tag))
    wait_committed(stack, topic, written)

    refused = {where for where, record in zip(written, records, strict=True) if ORACLES[field](record)}
    assert written[-1] not in refused, "the good record must be one the agent accepts"
    letters = letters_for(stack, topic, set(written), agent)
    assert set(letters) == refused, (f"dead-lettered but accepted: {set(letters) - refused}; refused but not "
                                     f"dead-lettered: {refused - set(letters)}")
    assert all(len(found) == 1 for found in letters.values()), "one letter per refused record"
    by_origin = dict(zip(written, records, strict=True))
    for where, (letter,) in letters.items():
        key, value = by_origin[where]
        headers = {k: v.decode() for k, v in letter.headers}
        assert headers["agent"] == agent and headers["reason"] and headers["category"]
        if len(key or b"") + len(value or b"") <= WHOLE_BYTES:
            assert (letter.key, letter.value) == (key, value) and "truncated" not in headers
        else:  # a bounded reference: the first bytes, the size and the hash of the original
            assert headers["truncated"] == "1"
            assert int(headers["original-size"]) == len(value or b"")
            assert headers["sha256"] == hashlib.sha256(value or b"").hexdigest()
            assert letter.value == (value or b"")[:HEAD_BYTES]
    processed = len(records) - len(refused)
    assert len(records) == processed + len(letters)
    assert deadletters_of(stack, agent) - letters_before == len(refused)
    # The counter benchmarks/faults.py reads: every record of the topic, processed or dead-lettered (too large ones
    # included), once. The topic's records are not only the test's: a ticket triage forwards to its ticket id's
    # partition, stage 2's idle timer sends heartbeats on its route topic (on its own clock, at any time of a run).
    committed, counted, held = consumed_bounds(stack, topic, agent)
    assert committed <= counted <= held, f"{topic}: {committed} committed, {counted} counted, {held} on the topic"
    assert stack.worker.metric("aiops_batches_unacknowledged_total", agent=agent) == 0
    assert stack.worker.proc.poll() is None
    assert "Crashed reason" not in Path(stack.worker.log).read_text(errors="replace")
    check_good_record_processed(stack, field, tag)


async def _send_to(bootstrap: str, topic: str, partition: int, key: bytes | None, value: bytes) -> int:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        return (await producer.send_and_wait(topic, value, key=key, partition=partition)).offset
    finally:
        await producer.stop()


def test_a_forged_source_offset_is_dead_lettered_and_skips_nothing(stack: Stack) -> None:
    """An outside producer's `alerts` record naming alerts.raw partition 0 at an offset the broker never held: were
    it trusted, the engine would skip every real record of raw partition 0 from then on (they are below it)."""
    tag = f"forged-{os.urandom(3).hex()}"
    real_key, real_value = good_record("alerts_raw", tag)
    partition = key_partition(parse("generic", real_value or b"")[0].key.encode(), stack.dep.partitions)
    forged = orjson.dumps(good_segment_batch(f"{tag}-x", source=(0, 10**9 * PARTS_PER_OFFSET)))
    bootstrap = stack.dep.broker.bootstrap
    at = asyncio.run(_send_to(bootstrap, stack.dep.topic("alerts"), partition, None, forged))
    asyncio.run(_send_to(bootstrap, stack.dep.topic("alerts_raw"), 0, real_key, real_value or b""))
    check_good_record_processed(stack, "alerts_raw", tag)  # normalized into segment (0, small): not skipped
    letters = letters_for(stack, stack.dep.topic("alerts"), {(partition, at)}, "correlate")
    (letter,) = letters[(partition, at)]
    headers = {k: v.decode() for k, v in letter.headers}
    assert headers["category"] == "forged_source" and "does not exist" in headers["reason"]
    assert letter.value == forged
