"""`aiops demo`: the whole pipeline on the embedded broker, fed the lab storm, printing what comes out.

Starts Tansu and a worker (a child process, stopped by pid), produces the storm file to `alerts.raw` as one
webhook-sized body, follows `incidents` until every alert is accounted for and the topic has gone quiet,
prints the incidents in the same form as `aiops replay`, and stops everything. Exit 0 when the live figures
equal the offline replay's, 1 when they differ or time runs out.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from aiokafka import AIOKafkaProducer

from correlator.config import DEFAULT_CONFIG
from correlator.models import IncidentEvent
from correlator.replay import render_text, replay
from stream.commands.replay import read_alerts

__all__ = ["configure", "run"]

LAB_STORM = Path(__file__).resolve().parents[2] / "benchmarks" / "storms" / "lab-m32.ndjson"


def configure(parser: argparse.ArgumentParser) -> None:
    """Flags of `aiops demo`."""
    parser.add_argument("file", nargs="?", type=Path, default=LAB_STORM, help="alerts to feed (default: lab storm)")
    parser.add_argument("--timeout", type=float, default=100.0, help="give up after this many seconds")


async def _feed_and_follow(bootstrap: str, body: bytes, expected_alerts: int, timeout: float,
                           quiet_s: float = 2.0) -> dict[str, IncidentEvent]:
    """Produce the body, then collect incident events until all alerts are in and the topic is quiet."""
    from stream.feed import follow_until, format_event

    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        await producer.send_and_wait("alerts.raw", body, key=b"generic")
    finally:
        await producer.stop()

    def done(latest: dict[str, IncidentEvent]) -> bool:
        return sum(e.alert_count for e in latest.values()) >= expected_alerts

    return await follow_until(bootstrap, done, timeout=timeout, quiet_s=quiet_s,
                              on_event=lambda ev: print(format_event(ev), flush=True))


def run(args: argparse.Namespace) -> int:
    """Run the demo end to end."""
    from stream.broker import BrokerStartError, free_port, start_broker
    from stream.feed import report_of
    from stream.settings import Settings
    from stream.worker import ensure_topics

    body = args.file.read_bytes()
    alerts = read_alerts(args.file)
    offline = replay(alerts, DEFAULT_CONFIG)
    workdir = Path(tempfile.mkdtemp(prefix="aiops-demo-"))
    try:
        broker = start_broker(log_path=workdir / "tansu.log")
    except BrokerStartError as exc:
        print(f"aiops demo: {exc}", file=sys.stderr)
        return 1
    worker: subprocess.Popen[bytes] | None = None
    try:
        settings = Settings.from_args(broker=broker.url, data_dir=str(workdir))
        ensure_topics(settings)
        print(f"broker {broker.url} (pid {broker.pid}); starting a worker, log in {workdir}/worker.log",
              file=sys.stderr)
        with open(workdir / "worker.log", "wb") as log:
            worker = subprocess.Popen(
                [sys.executable, "-m", "stream.cli", "worker", "--broker", broker.url,
                 "--web-port", str(free_port()), "--data-dir", str(workdir)],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                # A recording fed live is a replay: no event-time horizon (the lab storm is from 2026-03-02).
                env={**os.environ, "AIOPS_EVENT_HORIZON": "0"},
            )
        latest = asyncio.run(_feed_and_follow(broker.bootstrap, body, offline.alerts, args.timeout))
    finally:
        if worker is not None:
            worker.terminate()
            try:
                worker.wait(timeout=15)
            except subprocess.TimeoutExpired:
                worker.kill()
        broker.stop()
    live = report_of(latest, alerts=sum(e.alert_count for e in latest.values()), records=len(alerts))
    print()
    print(render_text(live, DEFAULT_CONFIG))
    same = [(i.key, i.alert_count) for i in live.incidents] == [(i.key, i.alert_count) for i in offline.incidents]
    print("live pipeline matches the offline replay" if same else "MISMATCH with the offline replay")
    return 0 if same else 1
