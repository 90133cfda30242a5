"""`aiops worker` (against any Kafka) and `aiops up` (embedded broker and a worker in one command)."""

from __future__ import annotations

import argparse
import sys

from stream.settings import Settings

__all__ = ["EMBEDDED_NOTE", "configure", "run", "configure_up", "run_up", "add_worker_flags", "settings_from"]


def add_worker_flags(parser: argparse.ArgumentParser) -> None:
    """Flags shared by `worker`, `up` and `demo`; unset flags leave env/defaults alone."""
    parser.add_argument("--app-id", dest="app_id", default=None, help="consumer group / app id")
    parser.add_argument("--web-port", dest="web_port", type=int, default=None, help="HTTP port (default 6066)")
    parser.add_argument("--partitions", type=int, default=None, help="partitions per topic (default 4)")
    parser.add_argument("--window", default=None, help="correlation window, e.g. 10m")
    parser.add_argument("--log-level", dest="log_level", default=None, help="info (default), warning, error")
    parser.add_argument("--data-dir", dest="data_dir", default=None, help="Faust's local data directory")
    parser.add_argument("--role", default=None, choices=("all", "ingest"),
                        help="all (default): ingest, agents, views; ingest: the HTTP ingest and /metrics only")


def settings_from(args: argparse.Namespace, **extra: object) -> Settings:
    """Settings from flags over environment over defaults."""
    names = ("app_id", "web_port", "partitions", "window", "log_level", "data_dir", "broker", "role")
    flags = {n: getattr(args, n, None) for n in names}
    return Settings.from_args(**{**flags, **extra})


def configure(parser: argparse.ArgumentParser) -> None:
    """Flags of `aiops worker`."""
    parser.add_argument("--broker", default=None, help="kafka://h1:9092,h2:9092 (default: AIOPS_BROKER or "
                        "kafka://127.0.0.1:9092)")
    add_worker_flags(parser)


def run(args: argparse.Namespace) -> int:
    """Run one worker against the configured Kafka until stopped."""
    from stream import worker

    worker.run(settings_from(args))
    return 0


EMBEDDED_NOTE = (
    "note: the embedded broker keeps every topic in memory: a broker restart loses the records on it (alerts not "
    "yet correlated, incident events, dead letters, offsets). The worker recovers on its own (re-creates the "
    "topics, resumes its agents, /readyz false meanwhile), but for durability run workers against a real Kafka: "
    "aiops worker --broker kafka://h1:9092,h2:9092"
)
"""Printed by `aiops up` at start (see stream/recovery.py for what a broker restart loses)."""


def configure_up(parser: argparse.ArgumentParser) -> None:
    """Flags of `aiops up`."""
    parser.add_argument("--broker-port", dest="broker_port", type=int, default=None,
                        help="port of the embedded broker (default: a free one)")
    add_worker_flags(parser)


def run_up(args: argparse.Namespace) -> int:
    """Start the embedded broker, create the topics, run a worker; Ctrl-C stops both."""
    from stream import worker
    from stream.broker import start_broker

    broker = start_broker(port=args.broker_port)
    print(f"embedded broker (Tansu, memory storage) on {broker.url}, pid {broker.pid}", file=sys.stderr)
    print(EMBEDDED_NOTE, file=sys.stderr)
    try:
        worker.run(settings_from(args, broker=broker.url))
    finally:
        broker.stop()
    return 0
