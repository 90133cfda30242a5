"""`aiops replay FILE... [--window 10m] [--json]`: correlate recorded alerts offline with the live engine."""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

import orjson

from correlator.config import DEFAULT_CONFIG, parse_duration
from correlator.models import Alert
from correlator.replay import render_text, replay
from correlator.sources import SourceError, detect_source, parse

__all__ = ["configure", "run", "read_alerts"]


def configure(parser: argparse.ArgumentParser) -> None:
    """Flags of `aiops replay`."""
    parser.add_argument("files", nargs="+", type=Path, help="Alertmanager webhook JSON, Zabbix event JSON, "
                        "generic alert JSON (object, array or NDJSON); '-' reads standard input")
    parser.add_argument("--window", default="10m", help="window size, e.g. 10m, 600, 1h (default 10m)")
    parser.add_argument("--mode", choices=["continuation", "tumbling"], default=DEFAULT_CONFIG.mode,
                        help="continuation (default): a storm across a window boundary stays one incident")
    parser.add_argument("--lateness", default="0s",
                        help="allowed lateness for out-of-order input (default 0s: a file is replayed as ordered)")
    parser.add_argument("--source", choices=["auto", "alertmanager", "zabbix", "generic"], default="auto")
    parser.add_argument("--json", action="store_true", help="one JSON object with every incident and its members")


def read_alerts(path: Path, source: str = "auto") -> list[Alert]:
    """Every alert in one recorded file, the source detected from its content unless named."""
    body = sys.stdin.buffer.read() if str(path) == "-" else path.read_bytes()
    kind = detect_source(body, max_bytes=None) if source == "auto" else source
    return parse(kind, body, max_bytes=None)


def run(args: argparse.Namespace) -> int:
    """Replay the files in the order given and print the incidents; exit 2 on unreadable input."""
    try:
        config = replace(DEFAULT_CONFIG, window_s=parse_duration(args.window), mode=args.mode,
                         allowed_lateness_s=parse_duration(args.lateness))
    except ValueError as exc:
        print(f"aiops replay: {exc}", file=sys.stderr)
        return 2
    alerts: list[Alert] = []
    for path in args.files:
        try:
            alerts.extend(read_alerts(path, args.source))
        except (OSError, SourceError) as exc:
            print(f"aiops replay: {path}: {exc}", file=sys.stderr)
            return 2
    report = replay(alerts, config)
    if args.json:
        sys.stdout.buffer.write(orjson.dumps(report.as_dict(), option=orjson.OPT_INDENT_2) + b"\n")
    else:
        print(render_text(report, config))
    return 0
