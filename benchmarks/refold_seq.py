"""The hop SIGKILL test's storm, killed and refolded offline: how often a reader keeping each incident's highest seq
ends on other content than the successor's state (hop42, session 41).

The crash contract says output published after the last checkpoint is regenerated with the same ids and seq; every
reader of `incidents` (notify, stage 2, the read model, the feed) drops an event whose seq is not above the last it
took. Stage 1's events depend on how its input was batched (an `updated` event goes out when a fold's end passes the
update interval), so a successor that reads the killed worker's uncheckpointed input again in other batches can give a
seq the killed worker already published other content, and end on a seq at or below the killed worker's last one.

Per run and per partition of `alerts` (the test's storm: 3000 alerts, seed 13, cut by the ingest's hop): the killed
worker folds its records a few at a time up to a random kill point, its last checkpoint at a random point before it;
the successor restores that checkpoint and folds the rest in larger batches, then flushes as an idle worker does.
Counted: runs whose reader's alert counts differ from the offline replay's (with what each worker published under the
incident's seqs), and runs where only the reader's total of duplicates does (the test's second assertion). No broker, no Faust: the engine and the records the worker would fold.

    AIOPS_PURE=1 PYTHONPATH=$PWD .venv/bin/python benchmarks/refold_seq.py --runs 40
"""

from __future__ import annotations

import argparse
import copy
import random
from collections import defaultdict

from correlator.config import DEFAULT_CONFIG
from correlator.engine import Correlator
from correlator.models import IncidentEvent
from correlator.records import AlertRecord
from correlator.replay import replay
from correlator.sources import parse
from correlator.state import DictStore
from stream.batches import decode_batch
from stream.hop import numbered
from tests.test_hop import _hop_records
from tests.test_pipeline import storm_bodies

Published = dict[str, dict[int, set[tuple[int, str, int]]]]
"""Incident id -> seq -> the (alert count, kind, worker) published under it."""


def partition_records(partitions: int = 4) -> tuple[dict[str, int], int, dict[int, list[list[AlertRecord]]]]:
    """The replay's alert count per incident and its duplicates, and per partition of `alerts` each record's alerts
    in offset order."""
    bodies = storm_bodies(3000, seed=13)
    report = replay([a for b in bodies for a in parse("generic", b)], DEFAULT_CONFIG)
    by_partition: dict[int, list[list[AlertRecord]]] = defaultdict(list)
    for partition, value in _hop_records(bodies, partitions):
        offset = len(by_partition[partition])
        segments = numbered(decode_batch(value)[0], offset)
        by_partition[partition].append([r for s in segments for r in s.records])
    return {i.id: i.alert_count for i in report.incidents}, report.duplicates, by_partition


def killed_and_refolded(records: list[list[AlertRecord]], rng: random.Random,
                        publish: list[tuple[int, IncidentEvent]]) -> None:
    """One partition: the killed worker's folds up to the kill, the successor's from the last checkpoint on."""
    kill = rng.randint(1, len(records) // 2)
    checkpoint_at = rng.randint(0, kill)
    small, large = rng.choice([1, 2, 3]), rng.choice([10, 30, 100])
    first = Correlator(DEFAULT_CONFIG, DictStore())
    checkpoint = (copy.deepcopy(first.store), first.watermark, 0)
    done = 0
    while done < kill:
        upto = min(kill, done + small)
        publish += [(1, ev) for ev in first.ingest([a for r in records[done:upto] for a in r])]
        done = upto
        if done <= checkpoint_at:
            checkpoint = (copy.deepcopy(first.store), first.watermark, done)
    store, watermark, done = checkpoint
    successor = Correlator(DEFAULT_CONFIG, store)
    successor.watermark = watermark
    while done < len(records):
        upto = min(len(records), done + large)
        publish += [(2, ev) for ev in successor.ingest([a for r in records[done:upto] for a in r])]
        done = upto
    publish += [(2, ev) for ev in successor.flush_idle()]


def one_run(seed: int, expected: dict[str, int], partitions: dict[int, list[list[AlertRecord]]]) -> tuple[
        dict[str, tuple[int | None, int | None]], int, Published, tuple[int, int]]:
    """The incidents whose reader's count differs from the replay's (got, replay), the reader's duplicates,
    everything published, and (incidents whose reader's event is not the last published for them, those of them
    whose last is a resolution or expiry the reader never took): what the test does not look at."""
    rng = random.Random(seed)
    publish: list[tuple[int, IncidentEvent]] = []
    for p in partitions:  # in order of their first record
        killed_and_refolded(partitions[p], rng, publish)
    latest: dict[str, IncidentEvent] = {}
    last: dict[str, IncidentEvent] = {}  # in publish order: the successor's state where it published one
    published: Published = defaultdict(lambda: defaultdict(set))
    for worker, ev in publish:
        last[ev.incident_id] = ev
        published[ev.incident_id][ev.seq].add((ev.alert_count, ev.kind, worker))
        if ev.incident_id not in latest or ev.seq > latest[ev.incident_id].seq:
            latest[ev.incident_id] = ev
    got = {i: e.alert_count for i, e in latest.items()}
    differ = {i: (got.get(i), expected.get(i)) for i in set(got) | set(expected) if got.get(i) != expected.get(i)}
    def facts(ev: IncidentEvent) -> tuple[str, int, int, int]:
        return ev.kind, ev.alert_count, ev.firing_count, ev.duplicates

    stale = [i for i, ev in last.items() if facts(latest[i]) != facts(ev)]
    closing = ("resolved", "expired")
    unclosed = [i for i in stale if last[i].kind in closing and latest[i].kind not in closing]
    return differ, sum(e.duplicates for e in latest.values()), published, (len(stale), len(unclosed))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=40)
    args = parser.parse_args()
    expected, duplicates, partitions = partition_records()
    differing = duplicates_only = with_stale = stale_total = unclosed_total = 0
    for seed in range(args.runs):
        diff, reader_duplicates, published, (stale, unclosed) = one_run(seed, expected, partitions)
        with_stale += stale > 0
        stale_total += stale
        unclosed_total += unclosed
        if diff:
            differing += 1
        elif reader_duplicates != duplicates:  # the hop test's second assertion
            duplicates_only += 1
            print(f"run {seed}: every count as the replay's, duplicates {reader_duplicates} for {duplicates}")
        for incident, (got, want) in sorted(diff.items()):
            seqs = "; ".join(f"{seq}: " + ", ".join(f"{c} {k} by {'killed' if w == 1 else 'successor'}"
                                                    for c, k, w in sorted(v)) for seq, v in
                             sorted(published[incident].items())[-3:])
            print(f"run {seed}: {incident} reader {got}, replay {want}; last seqs {seqs}")
    print(f"{differing} of {args.runs} runs end with a reader's count other than the replay's, {duplicates_only} more "
          "with its duplicates only")
    print(f"{with_stale} of {args.runs} runs end with a reader holding an incident's event other than the last one "
          f"published ({stale_total} incidents, {unclosed_total} of them closed but open for the reader)")


if __name__ == "__main__":
    main()
