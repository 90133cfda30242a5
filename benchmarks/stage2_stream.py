"""Stage 2 in the stream beside `aiops replay` on the same file: the same parents, and how close when not.

A worker at the default settings (stage 2 on, labels only) on a fresh deployment of the embedded broker is
fed the whole file at once (NDJSON bodies of `--per-record` alerts, a catch-up: the hardest case for event
order), and `incidents` is read until it has been quiet for `--quiet` seconds with every stage-1 incident
named to a parent. Printed: stage-1 incidents and parents of both, whether every child has the same parent,
the pairwise F1 of the stream's grouping of children against the replay's, and, where the file has a truth
(MicroSS: `truth.csv` beside it), the pairwise F1 over alerts of each against it. Stage-1 incidents are the
replay's in the stream (ids and members, `tests/test_pipeline.py`), so alerts are mapped to children by the
replay.

    .venv/bin/python benchmarks/stage2_stream.py                       # MicroSS, 4 partitions
    .venv/bin/python benchmarks/stage2_stream.py --partitions 1
    .venv/bin/python benchmarks/stage2_stream.py FILE --json
    .venv/bin/python benchmarks/stage2_stream.py --quick           # the lab storm: proves it works
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from aiokafka import AIOKafkaConsumer  # noqa: E402

from correlator.config import DEFAULT_CONFIG  # noqa: E402
from correlator.models import IncidentEvent  # noqa: E402
from correlator.replay import replay  # noqa: E402
from correlator.scoring import pairwise_score  # noqa: E402
from correlator.sources import parse  # noqa: E402
from correlator.stage2 import Assignment, ParentEvent  # noqa: E402
from stream.broker import start_broker  # noqa: E402
from stream.feed import parent_of  # noqa: E402
from stream.incident_records import decode_incident_record  # noqa: E402
from stream.settings import Settings  # noqa: E402
from tests.workers import Deployment  # noqa: E402

MICROSS = ROOT.parent / "shared" / "datasets" / "rca-micross" / "alerts.ndjson"
LAB_STORM = ROOT / "benchmarks" / "storms" / "lab-m32.ndjson"


async def follow(bootstrap: str, topic: str, quiet_s: float, timeout: float) -> dict[str, str]:
    """Child -> parent from `incidents`, once every stage-1 incident has one and nothing new came for `quiet_s`."""
    children: set[str] = set()
    parents: dict[str, ParentEvent] = {}
    assignments: dict[str, Assignment] = {}
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
                                auto_offset_reset="earliest", fetch_max_wait_ms=100)
    await consumer.start()
    try:
        deadline = last = time.monotonic()
        deadline += timeout
        while time.monotonic() < deadline:
            found = parent_of(parents.values(), assignments.values())
            if children and children <= set(found) and time.monotonic() - last >= quiet_s:
                return found
            for records in (await consumer.getmany(timeout_ms=200)).values():
                for record in records:
                    last = time.monotonic()
                    item = decode_incident_record(record.value, record.headers)
                    if isinstance(item, IncidentEvent):
                        children.add(item.incident_id)
                    elif isinstance(item, ParentEvent):
                        parents[item.parent_id] = item
                    elif isinstance(item, Assignment):
                        assignments[item.child_id] = item  # (stage 2's progress records are skipped)
        raise TimeoutError(f"{len(children)} incidents, {len(parent_of(parents.values(), assignments.values()))} "
                           f"named to a parent after {timeout} s")
    finally:
        await consumer.stop()


def run(path: Path, partitions: int, per_record: int, quiet_s: float, timeout: float) -> dict[str, Any]:
    """Replay and stream on one file; their parents side by side."""
    lines = [line for line in path.read_bytes().splitlines() if line.strip()]
    bodies = [b"\n".join(lines[i:i + per_record]) for i in range(0, len(lines), per_record)]
    alerts = [a for body in bodies for a in parse("generic", body)]
    offline = replay(alerts, DEFAULT_CONFIG, grouping=Settings().grouping_config())
    assert offline.parents is not None
    expected = {child.id: parent.id for parent in offline.parents for child in parent.children}
    with start_broker() as broker:
        # every parent, the causes of one incident included, as the replay lists them (off by default since
        # session 32: then only the parents of two or more are published, tests/test_stage2_pipeline.py)
        dep = Deployment(broker, Path(tempfile.mkdtemp(prefix="aiops-stage2-")), partitions=partitions,
                         extra_env={"AIOPS_IDLE_ADVANCE": "300", "AIOPS_STAGE2_LONE_CAUSES": "true"})
        dep.create_topics()
        worker = dep.start_worker("stage2")
        try:
            worker.wait_web()
            dep.produce("alerts_raw", [(b"generic", body) for body in bodies])
            live = asyncio.run(follow(broker.bootstrap, dep.topic("incidents"), quiet_s, timeout))
            counters = worker.get("/stage2/")["counters"]
        finally:
            worker.stop()
    same = sum(live.get(child) == parent for child, parent in expected.items())
    out: dict[str, Any] = {
        "file": str(path), "alerts": len(alerts), "partitions": partitions,
        "incidents": {"replay": len(expected), "stream": len(live)},
        "parents": {"replay": len(set(expected.values())), "stream": len(set(live.values()))},
        "identical": live == expected, "children_with_the_replay_parent": same,
        "stream_vs_replay_f1": pairwise_score(live, expected).f1, "late_children": counters.get("late", 0),
    }
    truth_file = path.parent / "truth.csv"
    if truth_file.exists():
        truth = {r["fingerprint"]: r["incident"] for r in csv.DictReader(truth_file.open())}
        child_of = {fp: inc.id for inc in offline.incidents for fp in inc.members}
        scored = {fp: child for fp, child in child_of.items() if fp in truth}
        out["f1_vs_truth"] = {
            name: pairwise_score({fp: grouping.get(child, child) for fp, child in scored.items()},
                                 {fp: truth[fp] for fp in scored}).f1
            for name, grouping in (("replay", expected), ("stream", live))}
    return out


def main(argv: list[str] | None = None) -> int:
    """Print the comparison (or JSON); exit 0 either way: a difference is a finding, not a failure."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("file", nargs="?", type=Path, default=MICROSS)
    p.add_argument("--partitions", type=int, default=4)
    p.add_argument("--per-record", type=int, default=100)
    p.add_argument("--quiet", type=float, default=8.0, help="seconds without news on `incidents` before it stops")
    p.add_argument("--timeout", type=float, default=300.0)
    p.add_argument("--json", action="store_true")
    p.add_argument("--quick", action="store_true", help="the lab storm (40 alerts) instead of the file")
    args = p.parse_args(argv)
    if args.quick:
        args.file, args.quiet = LAB_STORM, 3.0
    out = run(args.file, args.partitions, args.per_record, args.quiet, args.timeout)
    if args.json:
        print(json.dumps(out))
        return 0
    print(f"{out['file']}: {out['alerts']} alerts, {out['partitions']} partitions, fed at once")
    print(f"stage-1 incidents: replay {out['incidents']['replay']}, stream {out['incidents']['stream']}")
    print(f"parents: replay {out['parents']['replay']}, stream {out['parents']['stream']}; identical: "
          f"{out['identical']}; children under the replay's parent: {out['children_with_the_replay_parent']}; "
          f"pairwise F1 stream vs replay: {out['stream_vs_replay_f1']:.4f}; late children: {out['late_children']}")
    if "f1_vs_truth" in out:
        print(f"pairwise F1 against the truth: replay {out['f1_vs_truth']['replay']:.4f}, "
              f"stream {out['f1_vs_truth']['stream']:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
