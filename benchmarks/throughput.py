"""Throughput, latency and memory of the whole pipeline on the embedded broker, each beside a baseline.

Three parts, one command (medians of `--runs`; each run a fresh deployment with its own topics and app id on
one embedded Tansu, worker processes started as `aiops worker`, see tests/workers.py):

throughput  alerts/s to folded (the correlate agent's counter) on 1 and 2 workers (4 partitions), on both paths
            into correlation: `raw` from alerts.raw through normalize, `hop` from the compact `alerts` records the
            HTTP ingest writes (stream/hop.py; built by the ingest's own code before the clock starts), beside the
            ceiling: a group-less aiokafka consumer reading and orjson-parsing the same raw records on
            the same broker in the same run (benchmarks/raw_consumer.py). Workers start and own their partitions
            first; then the records are produced (a thread of this process) and the clock runs from the first
            parsed alert (`hop`: from the start of production) to the last folded alert, summed over the
            workers' /stats. Both record shapes: 100
            alerts per record (a webhook) and 1 alert per record. Beside them, in the same run, the agents'
            work on the same records with no broker at all (benchmarks/stage_costs.py): the most any wiring of
            this code could reach, as a share of the ceiling.
latency     one worker at a steady offered load of half its maximum on the same kind of stream (100-alert
            records of a generated storm stream, rescaled so that event time advances with the wall clock; the
            maximum is measured first, in the same run, as a catch-up on such a stream), paced for `--duration`
            seconds. Each event read from `incidents` is matched to the raw record that caused it: for
            `opened` the record holding the incident's first alert, for `updated` the record holding its
            latest alert (key and event time identify them); latency = read time - send time. The load starts
            3 s before and goes on 3 s past `--duration`, and only events of records sent within it are timed
            (before: storms in flight at the start open at once, reported apart; after: the last alerts of a
            stream wait for the 1 s idle flush, input stopping, not load). The worker's own
            `aiops_correlation_latency_seconds` (raw record timestamp to event sent, all kinds) is read beside it.
            The old load, half the throughput part's maximum, is run too, as an overload on this stream.
memory      one worker folding 10^6 alert records (firings, re-sends, resolutions of a generated stream spanning
            days of event time, so windows close and state is evicted) with 10^3 and 10^4 possible keys;
            VmHWM and VmRSS from /proc/<pid>/status when the folded count passes 10^4, 10^5 and 10^6.

    .venv/bin/python benchmarks/throughput.py                    # all three, 3 runs; writes RESULTS.md + PNGs
    .venv/bin/python benchmarks/throughput.py --only latency --rate 12000
    .venv/bin/python benchmarks/throughput.py --quick --json --plots /tmp/x   # small, for the test suite

The parts live in modules of their own: bench_workers.py (sizes, worker plumbing, quantiles),
throughput_part.py, latency_part.py, memory_part.py, throughput_results.py (plots and RESULTS.md); this file is
the command.

A full run stores its figures in benchmarks/data/throughput.json; a run of some parts (`--only`) merges into
it, and the RESULTS.md section and the plots are drawn from the merged figures.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_workers import FULL, QUICK, Plan, machine  # noqa: E402
from latency_part import LATENCY_LOADS, latency, live_maximum  # noqa: E402
from memory_part import SHORT_SLA_RETENTION_S, memory  # noqa: E402
from stage_costs import costs as stage_costs  # noqa: E402
from throughput_part import throughput  # noqa: E402
from throughput_results import RESULTS_MD, STORE, markdown, plot, write_results  # noqa: E402

from stream.broker import start_broker  # noqa: E402

__all__ = ["Plan", "FULL", "QUICK", "main"]

QUICK_STRESS = 4000.0
"""The most alerts/s the quick run generates its live stream for: the generator makes about 57 records per alert/s
asked (it skips 50 s to reach a steady state), so a rate near a worker's real maximum takes it a minute or more."""

# ---- entry point --------------------------------------------------------------------------------------------

def main(argv: Sequence[str] | None = None) -> int:
    """Run the chosen parts, then plot and (full runs) write RESULTS.md; `--json` prints the figures."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="small sizes, one run: proves it works, not speed")
    p.add_argument("--runs", type=int, default=None)
    p.add_argument("--only", action="append", choices=["throughput", "latency", "memory"])
    p.add_argument("--rate", type=float, default=None, help="latency load in alerts/s (default: half the "
                   "one-worker 100-alert throughput measured in this run, or stored)")
    p.add_argument("--duration", type=float, default=None, help="seconds of paced load per latency run")
    p.add_argument("--plots", type=Path, default=ROOT / "benchmarks", help="directory for the PNGs")
    p.add_argument("--results", type=Path, default=None, help="markdown file for the section "
                   "(default benchmarks/RESULTS.md, none with --quick)")
    p.add_argument("--backlog", action="store_true", help="memory: produce the whole stream at once (a catch-up) "
                   "instead of at most 200 records ahead of the worker")
    p.add_argument("--redraw", action="store_true", help="run nothing: plots and RESULTS.md from the stored figures")
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    plan = QUICK if args.quick else FULL
    plan = replace(plan, runs=args.runs or plan.runs, duration_s=args.duration or plan.duration_s)
    parts = [] if args.redraw else args.only or ["throughput", "latency", "memory"]
    results: dict[str, Any] = {} if args.quick or not STORE.exists() else json.loads(STORE.read_text())
    results.setdefault("runs", {})
    start_machine = machine()  # the load average before this run adds its own
    with start_broker() as broker:
        if "throughput" in parts:
            results["throughput"] = throughput(broker, plan)
            results["stage_costs"] = stage_costs(plan.records, plan.runs)
            results["runs"]["throughput"] = plan.runs
            _say(args, markdown({key: results[key] for key in ("throughput", "stage_costs", "runs")}))
        if "latency" in parts:
            stress = _half_max(results) or 2000.0
            if args.quick:  # --quick proves the part runs: its maximum of 3,000 alerts is no rate to generate for
                stress = min(stress, QUICK_STRESS)
            if args.rate:
                rate = args.rate
                results.pop("latency_maximum", None)  # a stored maximum would not be what this load is half of
            else:
                results["latency_maximum"] = live_maximum(broker, plan, stress)
                rate = results["latency_maximum"]["alerts_per_s"] / 2
            results["latency"] = latency(broker, plan, rate)
            # --quick proves each part runs once; the second load and the second memory series run the same code.
            results["latency_low"] = latency(broker, plan, rate / 4) if not args.quick else None
            # The old definition of the load, kept beside it: half the throughput part's maximum.
            results["latency_stress"] = (latency(broker, plan, stress)
                                         if stress > rate * 1.2 and not args.quick else None)
            results["runs"]["latency"] = plan.runs
        if "memory" in parts:
            results["memory"] = memory(broker, plan, None if args.backlog else 200)
            results["memory_backlog"] = args.backlog
            # Closed incident-SLA clocks (stream/tickets.py) leave after sla_retention (24 h) of wall clock or of
            # event time, whichever passes first (until 779c276 wall clock only, so a replay of days of event
            # time in a minute kept every one). The second series retains them 30 s, for comparison.
            results["memory_short_sla"] = (memory(broker, plan, None if args.backlog else 200,
                                                  {"AIOPS_SLA_RETENTION": str(SHORT_SLA_RETENTION_S)})
                                           if not args.quick else [])
            results["runs"]["memory"] = plan.runs
    given = list(argv) if argv is not None else sys.argv[1:]
    command = " ".join(["python benchmarks/throughput.py", *given])
    if not args.redraw:
        results.update(machine=start_machine, at=time.time(), command=command)
        results.setdefault("commands", {}).update({part: command for part in parts})
        results.setdefault("ran", {}).update({part: {"machine": start_machine, "at": results["at"]} for part in parts})
    plot(results, args.plots)
    if not args.quick and not args.redraw:
        STORE.parent.mkdir(parents=True, exist_ok=True)
        STORE.write_text(json.dumps(results))
    results_md = args.results or (None if args.quick else RESULTS_MD)
    if results_md is not None:
        write_results(results_md, markdown(results))
    if args.json:
        slim = {**results, **{part: {k: v for k, v in results[part].items() if k != "sample"}
                              for part in LATENCY_LOADS if results.get(part)}}
        print(json.dumps(slim))
    else:
        print(markdown(results))
    return 0


def _half_max(results: dict[str, Any]) -> float | None:
    rows = [r for r in results.get("throughput") or []
            if r["per_record"] == 100 and r["workers"] == 1 and r.get("path", "raw") == "raw"]
    return rows[0]["pipeline_alerts_per_s"] / 2 if rows else None


def _say(args: argparse.Namespace, text: str) -> None:
    if not args.json:
        print(text, flush=True)


if __name__ == "__main__":
    sys.exit(main())
