"""`aiops worker` (against any Kafka) and `aiops up` (embedded broker and a worker in one command)."""

from __future__ import annotations

import argparse
import sys

from stream.flags import add_settings_flags, load_settings
from stream.idle import TICK_S
from stream.settings import Settings

__all__ = [
    "EMBEDDED_NOTE",
    "LATENCY_SETTINGS",
    "configure",
    "run",
    "configure_up",
    "run_up",
    "add_worker_flags",
    "settings_from",
]

LATENCY_SETTINGS = ("idle_flush", "allowed_lateness")
"""Settings that trade how soon an incident shows against how much out-of-order input is absorbed."""


LATENCY_GROUP = "latency and reordering"


def add_worker_flags(parser: argparse.ArgumentParser, *, exclude: tuple[str, ...] = ()) -> None:
    """Every setting as a flag (`stream.flags`), the latency pair under its own heading; unset flags leave the
    environment, the config file and the defaults alone."""
    about = (
        "How soon an incident shows, against how much disorder in the sources is absorbed. Alerts are held for "
        "reordering until a newer alert passes them by --allowed-lateness or their partition has been quiet for "
        f"--idle-flush (the idle timer looks every {TICK_S:g}s): a lone alert on an idle worker waits --idle-flush "
        f"plus up to {TICK_S:g}s, and is not held at all with --allowed-lateness 0 (measured in the README, "
        "\"How long you wait for an incident\").")
    add_settings_flags(parser, exclude=exclude, groups={LATENCY_GROUP: (about, LATENCY_SETTINGS)})


def settings_from(args: argparse.Namespace, **extra: object) -> Settings:
    """Settings from flags over environment over the config file over defaults (`SettingsError`: one line)."""
    return load_settings(args, **extra)


def configure(parser: argparse.ArgumentParser) -> None:
    """Flags of `aiops worker`."""
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
    add_worker_flags(parser, exclude=("broker",))  # the embedded broker's URL


def run_up(args: argparse.Namespace) -> int:
    """Start the embedded broker, create the topics, run a worker; Ctrl-C stops both."""
    from stream import worker
    from stream.broker import BrokerStartError, start_broker

    settings_from(args, broker="kafka://127.0.0.1:9092")  # a bad setting ends `up` before a broker starts
    try:
        broker = start_broker(port=args.broker_port)
    except BrokerStartError as exc:
        print(f"aiops up: {exc}", file=sys.stderr)
        return 1
    print(f"embedded broker (Tansu, memory storage) on {broker.url}, pid {broker.pid}", file=sys.stderr)
    print(EMBEDDED_NOTE, file=sys.stderr)
    try:
        worker.run(settings_from(args, broker=broker.url))
    finally:
        broker.stop()
    return 0
