"""Where a soak's extra pages come from, fault by fault: each fault's pages in a `benchmarks/soak.py` report beside the
stage-2 parents `correlator.replay` makes of the same input (the soak's own compressed alerts, the worker's
default rules, causes of one incident not published), with and without the set's topology file (session 37, pages37).

A page beyond a fault's first is put in one class:
* `split`: stage 2 itself split the fault: replay, given the same alerts, ends with as many parents put down to it
  (a parent is put down to the fault most of its alerts belong to, as the soak puts a page down);
* `beyond`: more pages than replay's parents: something the stream did that grouping alone does not (a child paged
  alone before its cause named it, a resolved page opened again, a grouping the live stage 2 made differently).
It also says how many of the split pages the set's topology file would have spared (replay with it) and whether the
soak's time compression changes the grouping (replay of the raw set). A chaos run that lost accepted alerts with the
broker (in no incident: in flight at its stop) is classified a second time against replay of the alerts that did reach
an incident, the input the stream had to group: a page beyond the first classification but not the second is the
grouping of what survived, not something the stream did (session 41, child42: quick soak t5's second page of fault 4,
two children apart from their cause because 15 of the fault's last alerts went with the broker).

    python benchmarks/soak_pages.py /tmp/soak-final/report.json       # baseline and chaos of one soak
    python benchmarks/soak_pages.py REPORT --topology                  # the soak ran with the set's topology
    python benchmarks/soak_pages.py REPORT --topology --faults 8       # a `--quick` soak (its first 8 faults)
    python benchmarks/soak_pages.py REPORT --topology --trace T.jsonl  # a report before `in_no_incident_all`: the
                                                                       # alerts lost, from a `soak_trace.py` trace
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import orjson

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from soak import FLUSH, HOUR, build_input, incident_of  # noqa: E402
from soak_trace import load  # noqa: E402

from correlator.replay import replay  # noqa: E402
from correlator.sources.generic import parse  # noqa: E402
from correlator.topology import Topology, parse_topology  # noqa: E402
from stream.settings import Settings  # noqa: E402
from tests.paths import MICROSS  # noqa: E402


def parents_per_fault(alerts: list[dict[str, Any]], truth: dict[str, str], topology: Topology | None) -> Counter[str]:
    """Replay's final stage-2 parents, each put down to the fault most of its alerts belong to."""
    settings = Settings()
    parsed = parse(b"\n".join(orjson.dumps(a) for a in alerts), max_bytes=None)
    report = replay(parsed, settings.correlation_config(), grouping=settings.grouping_config(), topology=topology,
                    lone_causes=False)
    assert report.parents is not None
    per: Counter[str] = Counter()
    for parent in report.parents:
        votes = Counter(truth[fp] for fp in parent.members if fp in truth)
        if votes:
            per[votes.most_common(1)[0][0]] += 1
    return per


def classify(pages: dict[str, int], parents: Counter[str]) -> dict[str, Any]:
    """Extra pages (beyond each fault's first) as `split` (up to replay's parents) and `beyond`, with the faults."""
    split = beyond = 0
    beyond_faults: dict[str, tuple[int, int]] = {}
    fewer: dict[str, tuple[int, int]] = {}
    for fault, n in pages.items():
        extra = max(n - 1, 0)
        by_grouping = min(extra, max(parents.get(fault, 0) - 1, 0))
        split += by_grouping
        beyond += extra - by_grouping
        if extra > by_grouping:
            beyond_faults[fault] = (n, parents.get(fault, 0))
    for fault, p in parents.items():
        if 0 < pages.get(fault, 0) < p:
            fewer[fault] = (pages[fault], p)
    return {"pages": sum(pages.values()), "extra": split + beyond, "split": split, "beyond": beyond,
            "faults_paged_2plus": sum(1 for n in pages.values() if n > 1),
            "beyond_faults": {f: v for f, v in sorted(beyond_faults.items(), key=lambda kv: int(kv[0]))},
            "fewer_pages_than_parents": {f: v for f, v in sorted(fewer.items(), key=lambda kv: int(kv[0]))}}


def reached(alerts: list[dict[str, Any]], lost: Iterable[str]) -> list[dict[str, Any]]:
    """The soak's input less the alerts it accepted that no incident ever covered (`in_no_incident_all`: lost with
    the broker), in order: what the stream's stage 1 had to correlate."""
    gone = set(lost)
    return [a for a in alerts if a["fingerprint"] not in gone]


def lost_in_trace(faults: int | None, gap_cap: float, lines: list[dict[str, Any]]) -> list[str]:
    """The alerts of the soak's input no incident event of a `soak_trace.py` trace covers (the soak's own rule,
    `soak.incident_of`), for a report written before it carried `in_no_incident_all`. The input is placed in time
    as the soak placed it: its end is found from the first flush alert's incident (two hours after the end)."""
    probe = build_input(faults, gap_cap, end_at=time.time())
    flush_key = probe.keys[f"{FLUSH}-0"]
    starts = [d["fs"] for d in lines if d.get("k") == "ev" and d["key"] == flush_key]
    if not starts:
        raise SystemExit("the trace holds no incident of the first flush alert: cannot place the input in time")
    data = build_input(faults, gap_cap, end_at=min(starts) - 2 * HOUR)
    covered = incident_of(data, ((d["key"], d["fs"], d["ls"], d["id"]) for d in lines if d.get("k") == "ev"))
    return sorted(a["fingerprint"] for a in data.alerts if a["fingerprint"] not in covered)


def _faults_of(report: dict[str, Any]) -> int | None:
    """The faults a soak report covers when fewer than the whole set (a `--quick` one): replay then groups the same
    input the soak posted, not the whole set (soak38)."""
    runs = list(report.get("runs", {}).values())
    count = len(runs[0]["pages"]) if runs else None
    whole = len({row["incident"] for row in csv.DictReader((MICROSS / "truth.csv").open())})
    return count if count is not None and count < whole else None


def main(argv: list[str] | None = None) -> int:
    """Classify every run of the report."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("report", type=Path, help="a soak report (`--keep DIR` writes DIR/report.json)")
    p.add_argument("--topology", action="store_true", help="the soak ran with the set's topology file")
    p.add_argument("--gap-cap", type=float, default=1800.0, help="as the soak's --gap-cap")
    p.add_argument("--faults", type=int, default=None, help="as the soak's --faults (a `--quick` soak: 8); default "
                   "the report's own count when it says one, else all")
    p.add_argument("--trace", type=Path, default=None, help="a `soak_trace.py` trace of the report's chaos run: the "
                   "alerts lost with the broker, when the report does not list them (`in_no_incident_all`)")
    args = p.parse_args(argv)
    report = json.loads(args.report.read_text())
    faults = args.faults if args.faults is not None else _faults_of(report)
    data = build_input(faults, args.gap_cap, end_at=time.time() - 4 * 3600)  # as the soak places it
    topology = parse_topology((MICROSS / "topology.json").read_text())
    labels = parents_per_fault(data.alerts, data.truth, None)
    topo = parents_per_fault(data.alerts, data.truth, topology)
    raw = [orjson.loads(line) for line in (MICROSS / "alerts.ndjson").read_bytes().splitlines() if line.strip()]
    raw.sort(key=lambda a: (float(a["starts_at"]), a["fingerprint"]))
    uncompressed = parents_per_fault(raw, data.truth, None)
    for name, parents in (("labels", labels), ("topology", topo), ("labels, raw set (no compression)", uncompressed)):
        print(f"replay, {name}: {sum(parents.values())} parents put down to {len(parents)} faults, "
              f"{sum(1 for n in parents.values() if n > 1)} faults in 2+, {sum(n - 1 for n in parents.values())} "
              f"beyond the first")
    grouping = topo if args.topology else labels
    for run, doc in report["runs"].items():
        c = classify({f: n for f, n in doc["pages"].items() if n}, grouping)
        spared = sum(min(max(n - 1, 0), max(labels.get(f, 0) - 1, 0)) - min(max(n - 1, 0), max(topo.get(f, 0) - 1, 0))
                     for f, n in doc["pages"].items()) if not args.topology else 0
        print(f"{run}: {c['pages']} pages, {c['faults_paged_2plus']} faults paged 2+, {c['extra']} beyond each "
              f"fault's first: split by stage 2 {c['split']}, beyond replay's parents {c['beyond']}"
              + (f"; of the split, the set's topology spares {spared} in replay" if not args.topology else ""))
        print(f"  beyond (fault: pages, replay parents): {c['beyond_faults']}")
        print(f"  fewer pages than replay parents: {c['fewer_pages_than_parents']}")
        lost = doc.get("in_no_incident_all")
        if lost is None and args.trace is not None and run == "chaos":
            lost = lost_in_trace(faults, args.gap_cap, load(str(args.trace)))
        if lost:
            kept = reached(data.alerts, lost)
            survived = parents_per_fault(kept, data.truth, topology if args.topology else None)
            s = classify({f: n for f, n in doc["pages"].items() if n}, survived)
            print(f"  against replay of the {len(kept)} alerts that reached an incident ({len(data.alerts) - len(kept)} "
                  f"lost with the broker): beyond {s['beyond']}, split {s['split']}; beyond (fault: pages, replay "
                  f"parents): {s['beyond_faults']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
