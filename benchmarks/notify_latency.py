"""Time from an incident's first alert to its page, p50 and p99, at half load, with the notify stage on.

Per run, on its own embedded broker (Tansu), one worker (`--role all`: ingest, stage 1, stage 2, the notify stage
with the shipped defaults) whose notify file has one PagerDuty receiver, the loopback one of tests/receivers.py
(the Events API v2 contract, 202 with the `dedup_key`), served from a process of its own so that the load
generator's CPU does not delay its clock, behind the route `{receiver: oncall}` (the default hold: critical at once).

1. **Fold rate**, in the same run: a burst of 200-alert generic bodies posted as fast as the ingest takes them, and
   the slope of the folded count while its backlog drains (`benchmarks/faults.py`, `fold_rate_of`).
2. **Half load**: 200-alert bodies on a fixed schedule (open loop) at half that rate for `--duration` s, on the
   burst's 48 keys (steady incidents that keep updating), dated when sent.
3. **Probes**, posted meanwhile from a thread of their own, one every `--interval` s: one critical alert of a
   service of its own (a new incident and a new cause each, related to nothing else), `POST /ingest/alerts`.

Per probe, from the moment its request is sent (wall clock):

* **incident**: the stage-1 `opened` event on `incidents` (the record's timestamp, set by the worker's producer)
  - the same-run baseline, what the correlator took before this stage existed;
* **cause**: stage 2's parent event that names it (the probe's own cause), also on `incidents`;
* **page**: the PagerDuty `trigger` whose `dedup_key` is that cause's id (or the incident's, had it paged alone)
  arriving at the receiver.

Printed: p50 and p99 of each (ms), the notify stage's own part (page - cause, per probe), and the ratio page /
incident; rows per run and the medians of the runs.

    .venv/bin/python benchmarks/notify_latency.py            # 3 runs, 30 s of half load and 100 probes each
    .venv/bin/python benchmarks/notify_latency.py --quick    # 1 run, 8 s and 20 probes: proves it works
    .venv/bin/python benchmarks/notify_latency.py --json     # one JSON object instead of the table
    .venv/bin/python benchmarks/notify_latency.py --env AIOPS_STAGE2_LONE_CAUSES=true   # causes of one published
    .venv/bin/python benchmarks/notify_latency.py --results benchmarks/RESULTS.md   # also write its section there
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
from faults import HOST, alert_body, fold_rate_of, open_loop, post, start  # noqa: E402
from results_md import publish  # noqa: E402

from stream.broker import die_with_parent, start_broker  # noqa: E402
from stream.incident_records import KIND_HEADER, is_incident_event  # noqa: E402
from tests.workers import Deployment  # noqa: E402

BEGIN, END = "<!-- notify_latency.py: generated from here -->", "<!-- notify_latency.py: to here -->"
SECTION = "## Time to the page at half load: the notify stage (issue 18)"
PER_BODY = 200
STAMP = 1111111111.25
"""A time that stands for 'now' in the load body template, replaced as each body is sent."""
ROUTES = """receivers:
  - {{name: oncall, type: pagerduty, routing_key: "R0UTINGKEY", url: "{url}"}}
routes:
  - {{receiver: oncall}}
"""


# ---------------------------------------------------------------- the receiver, in a process of its own


def serve_receiver(out: Path) -> None:
    """Run tests/receivers.py's PagerDuty receiver; print its URL, append each accepted event, stamped with the wall
    clock as it is accepted, to `out` as one JSON line; until stdin closes."""
    from tests.receivers import start_receiver

    class Stamped(list[Any]):
        def append(self, event: Any) -> None:
            super().append(event)
            with out.open("ab") as sink:
                sink.write(orjson.dumps({"at": time.time(), "event": event}) + b"\n")

    async def run() -> None:
        receiver = await start_receiver("pagerduty")
        receiver.accepted = Stamped()
        print(receiver.url, flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)  # until the parent closes it
        await receiver.stop()

    asyncio.run(run())


@dataclass
class ReceiverProc:
    """The receiver process: its URL and the file of what it accepted."""

    proc: subprocess.Popen[str]
    url: str
    out: Path

    @classmethod
    def start(cls, out: Path) -> ReceiverProc:
        """Start it and wait for its URL."""
        proc = subprocess.Popen([sys.executable, __file__, "--serve-receiver", str(out)], cwd=ROOT, text=True,
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, preexec_fn=die_with_parent())
        assert proc.stdout is not None
        return cls(proc, proc.stdout.readline().strip(), out)

    def accepted(self) -> list[dict[str, Any]]:
        """Every event accepted so far, with its arrival `at`."""
        if not self.out.exists():
            return []
        return [orjson.loads(line) for line in self.out.read_bytes().splitlines() if line.strip()]

    def stop(self) -> None:
        """Close its stdin (it stops its server and exits); by pid if it does not."""
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


# ---------------------------------------------------------------- one run


@dataclass
class Probe:
    """One probe alert: its service, when it was sent, and what came of it (wall clock, epoch s)."""

    service: str
    sent: float = 0.0
    status: int = 0
    retries: int = 0
    incident_id: str = ""
    incident: float | None = None
    cause_id: str = ""
    cause: float | None = None
    page: float | None = None


def probe_body(probe: Probe) -> bytes:
    """The probe's one generic alert: critical, dated now, of its own service and alert name."""
    return orjson.dumps({"starts_at": probe.sent, "fingerprint": probe.service, "severity": "critical",
                         "labels": {"alertname": f"Probe-{probe.service}", "service": probe.service}})


def send_probes(port: int, probes: list[Probe], interval_s: float) -> None:
    """Post each probe on schedule, stamping when its first request is sent; a 503 (admission control shedding) is
    retried after 0.2 s as a sender retries it, and counted (`retried`): the wait is part of its latency."""
    begun = time.monotonic()
    for n, probe in enumerate(probes):
        time.sleep(max(0.0, begun + n * interval_s - time.monotonic()))
        probe.sent = time.time()
        while (status := post(port, "/ingest/alerts", probe_body(probe))) in (0, 503) and probe.retries < 50:
            probe.retries += 1
            time.sleep(0.2)
        probe.status = status


def read_incidents(dep: Deployment, probes: list[Probe]) -> None:
    """Fill each probe's incident and cause from `incidents`: the first stage-1 event of its service, the first
    parent event naming its incident, by the records' timestamps."""
    by_service = {p.service: p for p in probes}
    by_incident: dict[str, Probe] = {}
    parents: list[tuple[float, dict[str, Any]]] = []
    for record in dep.read_so_far("incidents", timeout=60):
        if b"probe-" not in (record.value or b""):
            continue
        at, value = record.timestamp / 1000, orjson.loads(record.value)
        if is_incident_event(record.headers):
            probe = by_service.get(value.get("service", ""))
            if probe is not None and (probe.incident is None or at < probe.incident):
                probe.incident, probe.incident_id = at, value["incident_id"]
                by_incident[probe.incident_id] = probe
        elif dict(record.headers).get(KIND_HEADER) == b"parent":
            parents.append((at, value))
    for at, parent in parents:
        for child in parent["children"]:
            probe = by_incident.get(child)
            if probe is not None and (probe.cause is None or at < probe.cause):
                probe.cause, probe.cause_id = at, parent["parent_id"]


def read_pages(receiver: ReceiverProc, probes: list[Probe]) -> int:
    """Fill each probe's page: the first trigger for its cause (or its incident); the triggers of other subjects."""
    by_subject = {p.cause_id: p for p in probes if p.cause_id} | {p.incident_id: p for p in probes if p.incident_id}
    others = 0
    for item in receiver.accepted():
        event = item["event"]
        if event["event_action"] != "trigger":
            continue
        probe = by_subject.get(event["dedup_key"])
        if probe is None:
            others += 1
        elif probe.page is None:
            probe.page = item["at"]
    return others


def wait_paged(receiver: ReceiverProc, probes: list[Probe], timeout_s: float) -> None:
    """Until a trigger naming each probe's service arrived, or `timeout_s` (a page may wait for stage 2's
    fallback, `notify_cause_wait`)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        seen = {s for item in receiver.accepted() for s in item["event"].get("payload", {}).get(
            "custom_details", {}).get("services", [])}
        if all(p.service in seen for p in probes):
            return
        time.sleep(0.5)


def one_run(workdir: Path, run: int, args: argparse.Namespace) -> dict[str, Any]:
    """Fold rate, then half load with probes; the probes' latencies and the load achieved."""
    receiver = ReceiverProc.start(workdir / f"pages-{run}.ndjson")
    broker = start_broker(log_path=workdir / f"tansu-{run}.log")
    try:
        notify = workdir / f"notify-{run}.yaml"
        notify.write_text(ROUTES.format(url=receiver.url))
        dep = Deployment(broker, workdir / f"run-{run}", extra_env={
            "AIOPS_NOTIFY_FILE": str(notify), "AIOPS_LOG_LEVEL": "warning",
            **dict(pair.split("=", 1) for pair in args.env)})
        dep.workdir.mkdir(parents=True, exist_ok=True)
        dep.create_topics()
        worker = start(dep, f"latency-{run}")
        try:
            fold_rate, _, fold_note = fold_rate_of(worker, time.time(), PER_BODY, args.calibration_bodies)
            offered = 0.5 * fold_rate / PER_BODY  # bodies/s
            template = alert_body("load", 0, PER_BODY, STAMP).replace(b"load-0-", b"load-@@-")
            stamp = repr(STAMP).encode()

            def make(n: int) -> bytes:
                return template.replace(b"@@", str(n).encode()).replace(stamp, repr(time.time()).encode())

            probes = [Probe(f"probe-{run}-{n}") for n in range(args.probes)]
            prober = threading.Thread(target=send_probes, args=(worker.web_port, probes, args.interval),
                                      name="probes")
            answers: Counter[int] = Counter()
            t0 = time.monotonic()
            prober.start()
            sent = asyncio.run(open_loop(f"http://{HOST}:{worker.web_port}/ingest/alerts", make, offered,
                                         args.duration, answers))
            load_s = time.monotonic() - t0
            prober.join()
            wait_paged(receiver, probes, args.page_timeout)
            read_incidents(dep, probes)
            others = read_pages(receiver, probes)
            crashed = worker.proc.poll() is not None
        finally:
            worker.stop()
    finally:
        broker.stop()
        receiver.stop()
    return {"fold_rate": round(fold_rate), "fold_rate_note": fold_note,
            "offered_alerts_per_s": round(offered * PER_BODY),
            "achieved_alerts_per_s": round(sent * PER_BODY / load_s), "load_answers": dict(answers),
            "other_triggers": others, "crashed": crashed, **figures(probes)}


# ---------------------------------------------------------------- figures


def quantile(values: Sequence[float], q: float) -> float:
    """The q-quantile (nearest rank) of `values`; NaN when empty."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def figures(probes: Sequence[Probe]) -> dict[str, Any]:
    """p50/p99 in ms of each span over the probes that have it, and how many lack one."""
    spans = {
        "incident": [p.incident - p.sent for p in probes if p.incident is not None],
        "cause": [p.cause - p.sent for p in probes if p.cause is not None],
        "page": [p.page - p.sent for p in probes if p.page is not None],
        "notify": [p.page - p.cause for p in probes if p.page is not None and p.cause is not None],
    }
    out: dict[str, Any] = {"probes": len(probes), "refused": sum(p.status != 202 for p in probes),
                           "retried": sum(p.retries > 0 for p in probes)}
    for name, values in spans.items():
        out[name] = {"n": len(values), "p50_ms": round(quantile(values, 0.5) * 1000, 1),
                     "p99_ms": round(quantile(values, 0.99) * 1000, 1)}
    out["ratio_p50"] = round(out["page"]["p50_ms"] / out["incident"]["p50_ms"], 2)
    out["ratio_p99"] = round(out["page"]["p99_ms"] / out["incident"]["p99_ms"], 2)
    return out


def medians(runs: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The median of each figure over the runs."""
    out: dict[str, Any] = {key: statistics.median(r[key] for r in runs)
                           for key in ("fold_rate", "offered_alerts_per_s", "achieved_alerts_per_s", "ratio_p50",
                                       "ratio_p99")}
    for span in ("incident", "cause", "page", "notify"):
        out[span] = {q: statistics.median(r[span][q] for r in runs) for q in ("p50_ms", "p99_ms")}
    return out


def table(result: dict[str, Any]) -> str:
    """Markdown: one row per run and the medians."""
    rows = [*((f"run {i + 1}", r) for i, r in enumerate(result["runs"])), ("**median**", result["median"])]
    lines = [
        "| run | fold rate (alerts/s) | load offered / achieved | first alert -> incident event p50 / p99 (ms) "
        "| -> cause event | -> page at PagerDuty | page - cause (notify's own) | page / incident p50, p99 |",
        "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for name, r in rows:
        def span(key: str, r: dict[str, Any] = r) -> str:
            return f"{r[key]['p50_ms']:.0f} / {r[key]['p99_ms']:.0f}"
        lines.append(f"| {name} | {r['fold_rate']:.0f} | {r['offered_alerts_per_s']:.0f} / "
                     f"{r['achieved_alerts_per_s']:.0f} | {span('incident')} | {span('cause')} | {span('page')} "
                     f"| {span('notify')} | {r['ratio_p50']:.2f}x, {r['ratio_p99']:.2f}x |")
    notes = [f"run {i + 1}: {r['probes']} probes ({r['retried']} retried after a 503, {r['refused']} refused), "
             f"paged {r['page']['n']}, "
             f"{r['other_triggers']} other triggers (the load's own incidents), load answers {r['load_answers']}"
             f"{', worker crashed' if r['crashed'] else ''}; fold rate: {r['fold_rate_note']}"
             for i, r in enumerate(result["runs"])]
    machine = result["machine"]
    return "\n".join([
        f"`{result['command']}` ({machine['cpus']} CPUs, Python {machine['python']}, {machine['date']}, load "
        f"average {machine['loadavg']} at the start):", "", *lines, "", *(f"- {n}" for n in notes)])


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """Flags; `--quick` scales the run down."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--duration", type=float, default=30.0, help="seconds of half load per run")
    p.add_argument("--probes", type=int, default=100, help="probe alerts per run, spread over the load")
    p.add_argument("--calibration-bodies", type=int, default=500, help="bodies of the fold-rate burst")
    p.add_argument("--page-timeout", type=float, default=90.0, help="how long to wait for the last page")
    p.add_argument("--quick", action="store_true", help="1 run, 8 s, 20 probes")
    p.add_argument("--env", action="append", default=[], metavar="AIOPS_X=V",
                   help="a worker setting for every run (repeatable), e.g. AIOPS_STAGE2_LONE_CAUSES=true")
    p.add_argument("--json", action="store_true")
    p.add_argument("--results", type=Path, default=None, help="also write the table into this markdown file")
    p.add_argument("--serve-receiver", type=Path, default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.quick:
        args.runs, args.duration, args.probes, args.calibration_bodies = 1, 8.0, 20, 150
    args.interval = args.duration / args.probes
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Run, print (and write) the figures."""
    args = parse_args(argv)
    if args.serve_receiver is not None:
        serve_receiver(args.serve_receiver)
        return 0
    machine = {"cpus": os.cpu_count(), "python": platform.python_version(), "date": time.strftime("%Y-%m-%d"),
               "loadavg": round(os.getloadavg()[0], 1)}
    runs: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="aiops-notify-latency-") as tmp:
        for run in range(args.runs):
            runs.append(one_run(Path(tmp), run, args))
            print(f"run {run + 1}: {json.dumps(runs[-1])}", file=sys.stderr)
    command = "python benchmarks/notify_latency.py" + (" --quick" if args.quick else "")
    result = {"machine": machine, "command": command, "runs": runs, "median": medians(runs)}
    return publish(result, lambda: table(result), as_json=args.json, results=args.results, begin=BEGIN, end=END,
                   heading=SECTION)


if __name__ == "__main__":
    sys.exit(main())
