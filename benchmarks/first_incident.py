"""How long a person waits: one alert posted to an idle worker, until its incident is listed on `/incidents/`.

Starts its own embedded broker (Tansu) and, per setting measured, one worker (the whole pipeline), waits until
it owns its partitions and is ready, then `--runs` times posts one generic alert (a new service each time, dated
now) to `POST /ingest/alerts` and polls `GET /incidents/` every 20 ms until its incident is there; between runs
the worker is idle longer than its idle flush. The wait is measured from the moment the request is sent.

Rows: the defaults, then the same with one latency setting changed, each with its median and its ratio to the
defaults' median in the same run (`aiops up --help`, "latency and reordering", names the settings):

    .venv/bin/python benchmarks/first_incident.py           # 3 runs per setting, medians
    .venv/bin/python benchmarks/first_incident.py --quick   # 1 run, defaults and one other: proves it works
    .venv/bin/python benchmarks/first_incident.py --json    # one JSON object instead of the table
    .venv/bin/python benchmarks/first_incident.py --results benchmarks/RESULTS.md   # also write its section there
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
import time
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
from results_md import write_section  # noqa: E402
from stream.broker import start_broker  # noqa: E402
from tests.workers import Deployment, WorkerProc  # noqa: E402

SETTINGS: dict[str, dict[str, str]] = {
    "defaults (idle flush 1s, allowed lateness 0.5s)": {},
    "allowed lateness 0s": {"AIOPS_ALLOWED_LATENESS": "0"},
    "idle flush 0.2s": {"AIOPS_IDLE_FLUSH": "0.2"},
}
"""Label -> the worker's environment on top of the defaults; the first row is the baseline."""

POLL_S = 0.02
BEGIN, END = "<!-- first_incident.py: generated from here -->", "<!-- first_incident.py: to here -->"
SECTION = "## How long a person waits for an incident"
IDLE_BETWEEN_S = 2.0  # longer than the default idle flush: every run starts on a quiet worker


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """Flags of the benchmark."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="alerts posted per setting (default 3)")
    parser.add_argument("--quick", action="store_true", help="one run per setting")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--results", type=Path, default=None, help="also write the table into this markdown file")
    args = parser.parse_args(argv)
    args.settings = dict(list(SETTINGS.items())[:2]) if args.quick else SETTINGS
    if args.quick:
        args.runs = 1
    return args


def _post_alert(worker: WorkerProc, service: str) -> None:
    body = json.dumps({"starts_at": time.time(), "service": service, "symptom": "FirstHour",
                       "severity": "critical", "labels": {"instance": f"{service}-1"}}).encode()
    req = urllib.request.Request(f"http://127.0.0.1:{worker.web_port}/ingest/alerts", data=body, method="POST",
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        if resp.status != 202:
            raise RuntimeError(f"ingest answered {resp.status}")


def wait_for_incident(worker: WorkerProc, service: str, timeout: float = 30.0) -> float:
    """Post one alert for `service` and return the seconds until `/incidents/` lists its incident."""
    key = f"{service}/FirstHour"
    sent = time.monotonic()
    _post_alert(worker, service)
    while time.monotonic() - sent < timeout:
        if any(i["key"] == key for i in worker.get("/incidents/")["incidents"]):
            return time.monotonic() - sent
        time.sleep(POLL_S)
    raise TimeoutError(f"no incident for {key} after {timeout}s:\n{worker.tail()}")


def measure(dep: Deployment, label: str, env: dict[str, str], runs: int) -> dict[str, Any]:
    """One worker with `env`, `runs` lone alerts on it; the waits in seconds."""
    dep.extra_env = env
    worker = dep.start_worker(f"w{abs(hash(label)) % 1000}")
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if worker.get("/readyz").get("ready"):
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"worker not ready:\n{worker.tail()}")
            time.sleep(0.3)
        worker.wait_partitions(dep.partitions)
        waits = []
        for run in range(runs):
            time.sleep(IDLE_BETWEEN_S)
            waits.append(round(wait_for_incident(worker, f"fh-{len(label)}-{run}-{int(time.time())}"), 3))
    finally:
        worker.stop()
    return {"setting": label, "env": env, "waits_s": waits, "median_s": statistics.median(waits)}


def bench(args: argparse.Namespace) -> dict[str, Any]:
    """Every setting on its own deployment of one broker; ratios to the first (the defaults)."""
    workdir = Path(tempfile.mkdtemp(prefix="first-incident-"))
    broker = start_broker(log_path=workdir / "tansu.log")
    rows = []
    try:
        for label, env in args.settings.items():
            dep = Deployment(broker, workdir / f"d{len(rows)}", extra_env={})
            dep.workdir.mkdir()
            dep.create_topics()
            rows.append(measure(dep, label, env, args.runs))
    finally:
        broker.stop()
    base = rows[0]["median_s"]
    for row in rows:
        row["ratio_to_defaults"] = round(row["median_s"] / base, 2)
    return {"runs": args.runs, "machine": f"{platform.processor() or platform.machine()}, {platform.node()}",
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "rows": rows}


def main(argv: Sequence[str] | None = None) -> int:
    """Run and print."""
    args = parse_args(argv)
    rep = bench(args)
    if args.json:
        print(json.dumps(rep))
        return 0
    print(f"one alert posted to an idle worker -> listed on /incidents/ ({rep['runs']} runs per setting, "
          f"{rep['date']})")
    print(f"{'setting':<50} {'waits (s)':<24} {'median':>7} {'ratio':>6}")
    for row in rep["rows"]:
        waits = ", ".join(f"{w:.2f}" for w in row["waits_s"])
        print(f"{row['setting']:<50} {waits:<24} {row['median_s']:>7.2f} {row['ratio_to_defaults']:>6.2f}")
    if args.results is not None:
        write_section(args.results, markdown(rep), begin=BEGIN, end=END, heading=SECTION)
    return 0


def markdown(rep: dict[str, Any]) -> str:
    """The RESULTS.md section: the table, the machine and date, the command."""
    lines = [BEGIN, "", f"One alert posted to an idle worker until `/incidents/` lists it, {rep['runs']} runs per "
             f"setting; {rep['date']}, {rep['machine']}; ratio = median / the defaults' median in the same run.", "",
             "| setting | waits (s) | median (s) | ratio |", "|---|---|---|---|"]
    for row in rep["rows"]:
        waits = ", ".join(f"{w:.2f}" for w in row["waits_s"])
        lines.append(f"| {row['setting']} | {waits} | {row['median_s']:.2f} | {row['ratio_to_defaults']:.2f} |")
    lines += ["", "Reproduce: `python benchmarks/first_incident.py --results benchmarks/RESULTS.md`", "", END]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
