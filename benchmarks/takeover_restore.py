"""What a takeover costs the successor: two workers fold `two_workers.py`'s input (1,000 records of 100 alerts on the
hop path), one is SIGKILLed, and the survivor's log gives the times from its new assignment to the end of its table
restore and to "Worker ready", with the records it restored (Faust's highwater table less its start offsets).

Measured (recov38, before the default became 0): a standby replica does not shorten the restore. Faust promotes it
and reads the partition's changelog again from its start, since an in-memory store persists no offset. Arms as in
two_workers.py (`--arm`); the default is `table_standby_replicas` 0 since recov38.

    .venv/bin/python benchmarks/takeover_restore.py --runs 2 --arm sb1=2:AIOPS_TABLE_STANDBY_REPLICAS=1 default sb1
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import re
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_workers import fresh_deployment, start_workers, stop_all  # noqa: E402
from pipeline_throughput import storm_records  # noqa: E402
from throughput_part import hop_records, timed_fold  # noqa: E402

from stream.broker import EmbeddedBroker, start_broker  # noqa: E402

ARMS: dict[str, dict[str, str]] = {"default": {}}
"""Named arms: worker environment (added to the deployment's); two workers each."""

STAMP = re.compile(r"^\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3})\]")
ROW = re.compile(r"^\|\s*(\S+)\s*\|\s*(\d+)\s*\|\s*(-?\d+)\s*\|")


def _at(line: str) -> float | None:
    match = STAMP.match(line)
    if match is None:
        return None
    return datetime.datetime.strptime(match.group(1), "%Y-%m-%d %H:%M:%S,%f").timestamp()


def _table(lines: list[str], start: int, title: str) -> dict[tuple[str, int], int]:
    """The rows of the Faust log table that follows the line containing `title` from `start`."""
    rows: dict[tuple[str, int], int] = {}
    at = next((i for i in range(start, len(lines)) if title in lines[i]), None)
    if at is None:
        return rows
    topic = ""
    for line in lines[at + 1:]:
        if line.startswith("["):
            break
        match = ROW.match(line)
        if match:
            topic = topic if match.group(1) == "〃" else match.group(1)
            rows[(topic, int(match.group(2)))] = int(match.group(3))
    return rows


def takeover(log_text: str, killed_at: float) -> dict[str, Any]:
    """From the survivor's log: its first rebalance after `killed_at` (epoch s), seconds from it to the restore's
    end and to ready, and the changelog records it restored."""
    lines = log_text.splitlines()
    start = next((i for i, line in enumerate(lines) if "generation id" in line and (_at(line) or 0) >= killed_at),
                 None)
    if start is None:
        return {"found": False}
    began = _at(lines[start]) or 0.0
    done = next((_at(line) for line in lines[start:] if "Done reading from changelog" in line
                 or "Recovery complete" in line), None)
    ready = next((_at(line) for line in lines[start:] if "Worker ready" in line), None)
    highwaters = _table(lines, start, "Highwater for active changelog partitions")
    offsets = _table(lines, start, "active offsets at start of reading")
    restored = sum(max(0, hw - offsets.get(tp, -1)) for tp, hw in highwaters.items())
    return {"found": True, "assigned_after_kill_s": round(began - killed_at, 2),
            "restore_s": round(done - began, 2) if done else None,
            "ready_s": round(ready - began, 2) if ready else None, "restored_records": restored,
            "restoring": any("Restoring state" in line for line in lines[start:start + 400])}


def one_run(broker: EmbeddedBroker, env: dict[str, str], bodies: list[bytes], alerts: int) -> dict[str, Any]:
    """Two workers fold the input, worker 0 is SIGKILLed 5 s later, worker 1's takeover is read from its log."""
    dep = fresh_deployment(broker, **env)
    procs = start_workers(dep, 2)
    try:
        timed_fold(dep, procs, "hop", bodies, hop_records(bodies, dep.partitions), alerts, 600)
        time.sleep(5)  # the last checkpoints reach the changelogs
        killed_at = time.time()
        procs[0].kill()
        deadline = time.monotonic() + 180
        result: dict[str, Any] = {"found": False}
        while time.monotonic() < deadline:
            result = takeover(procs[1].log.read_text(), killed_at)
            if result.get("ready_s") is not None:
                break
            time.sleep(1)
        return result
    finally:
        stop_all(procs)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("names", nargs="*", default=["default"])
    p.add_argument("--runs", type=int, default=2)
    p.add_argument("--records", type=int, default=1000)
    p.add_argument("--per-record", type=int, default=100)
    p.add_argument("--arm", action="append", default=[], help="NAME=2:VAR=VALUE[,VAR=VALUE]: an arm of your own")
    args = p.parse_args()
    for spec in args.arm:
        name, _, rest = spec.partition("=")
        _, _, pairs = rest.partition(":")
        ARMS[name] = dict(pair.split("=", 1) for pair in pairs.split(",") if pair)
    bodies, alerts = storm_records(args.records, args.per_record, seed=7)
    runs: dict[str, list[dict[str, Any]]] = {n: [] for n in args.names}
    with start_broker() as broker:
        for i in range(args.runs):
            for name in (args.names if i % 2 == 0 else list(reversed(args.names))):
                run = one_run(broker, dict(ARMS[name]), bodies, alerts)
                run["load"] = os.getloadavg()[0]
                runs[name].append(run)
                print(json.dumps({"arm": name, "round": i + 1, **run}), file=sys.stderr, flush=True)
    medians = {name: {k: statistics.median(r[k] for r in rs if r.get(k) is not None)
                      for k in ("restore_s", "ready_s", "restored_records") if any(r.get(k) is not None for r in rs)}
               for name, rs in runs.items()}
    print(json.dumps({"alerts": alerts, "runs": args.runs, "medians": medians, "per_run": runs}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
