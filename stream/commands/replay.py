"""`aiops replay FILE... [--window 10m] [--json] [--stage 1|2] [--topology FILE]`: correlate recorded alerts offline.

Both stages run by default. The text form prints the stage-1 incidents and their figures first (unchanged
from stage 1 alone), then the stage-2 causes with their children; `--json` keeps the stage-1 `incidents`
(each naming its `parent_id`) and adds `parents`, the final parent incidents with all their alerts'
fingerprints in `members`. `--stage 1` runs stage 1 only and prints exactly what it printed before stage 2.

A recorded file has no arrival times, so the event-time rule runs in its replay form (`guard_replay`): an alert
dated more than `--max-future-skew` ahead of the records after it is placed where the recording's clock stood
and labelled `aiops_time_clamped`; there is no horizon (a recording is old by nature). The wall clock is read
here, never in `correlator/`.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace
from pathlib import Path

import orjson

from correlator.config import CorrelationConfig
from correlator.eventtime import guard_replay
from correlator.models import Alert
from correlator.replay import render_text, replay
from correlator.sources import SourceError, detect_source, parse
from correlator.stage2 import DEFAULT_GROUPING, GroupingConfig
from correlator.topology import Topology, TopologyError, parse_topology
from stream.flags import add_settings_flags, load_settings
from stream.settings import Settings

__all__ = ["REPLAY_SETTINGS", "configure", "read_alerts", "read_topology", "replay_config", "replay_settings", "run"]

REPLAY_SETTINGS = ("background_factor", "config_file", "dense_alerts", "dense_factor", "dense_floor", "first_gap",
                   "gap_factor", "grouping", "min_gap", "rejoin_flaps", "stage2_lone_causes", "stage2_topology",
                   "window")
"""The worker's settings `aiops replay` takes as flags of the same names; with its own short flags, the environment
and the config file they decide its stages as they decide the worker's (`Settings.correlation_config`,
`Settings.grouping_config`)."""


def configure(parser: argparse.ArgumentParser) -> None:
    """Flags of `aiops replay`."""
    parser.add_argument("files", nargs="+", type=Path, help="Alertmanager webhook JSON, Zabbix event JSON, "
                        "generic alert JSON (object, array or NDJSON); '-' reads standard input")
    # Stage 1's rules are the worker's settings (stream/settings.py: --window, --min-gap, ... are generated from
    # them, REPLAY_SETTINGS), read from the same AIOPS_* variables and config file, so a replay matches the worker
    # beside it; a flag wins over both. These three keep replay's own names (--max-future-skew: measured against
    # the records after an alert, a recording having no arrival times).
    parser.add_argument("--mode", choices=["quiet-gap", "continuation", "tumbling"], default=None,
                        help="how an incident ends (the worker's --window-mode; default quiet-gap)")
    parser.add_argument("--lateness", default=None,
                        help="allowed lateness for out-of-order input (the worker's --allowed-lateness; default 0s "
                             "here, unless that setting is given: a file is replayed as ordered)")
    parser.add_argument("--max-future-skew", default=None,
                        help="an alert dated further ahead of the records after it is clamped (default 5m)")
    parser.add_argument("--source", choices=["auto", "alertmanager", "zabbix", "generic"], default="auto")
    parser.add_argument("--json", action="store_true", help="one JSON object with every incident and its members")
    parser.add_argument("--stage", type=int, choices=[1, 2], default=2,
                        help="2 (default): also group incidents into causes; 1: stage-1 incidents only")
    parser.add_argument("--topology", type=Path, default=None,
                        help="stage 2: topology file (JSON or YAML: nodes and edges, or services); "
                             "without it, stage 2 relates incidents by labels (host, namespace, cluster)")
    # Stage 2's rules are the worker's settings (stream/settings.py), read from the same AIOPS_* variables and
    # config file, so a replay groups as the worker beside it does; the four short flags are kept.
    parser.add_argument("--gap", default=None, help="stage 2: largest quiet time between a cause's alerts and a "
                        f"new related incident (the worker's --stage2-gap; default {DEFAULT_GROUPING.gap_s:g}s)")
    parser.add_argument("--hops", type=int, default=None, help="stage 2: topology edges allowed between related "
                        f"entities (the worker's --stage2-hops; default {DEFAULT_GROUPING.max_hops})")
    parser.add_argument("--burst", default=None,
                        help="stage 2: onset proximity; an incident starting within this of a cause's latest "
                             "start carries it on, and only such an incident joins by a shared host or a topology path "
                             f"alone (the worker's --stage2-burst; default {DEFAULT_GROUPING.burst_s:g}s)")
    parser.add_argument("--merge-window", default=None,
                        help="stage 2: causes that began within this of each other merge when one incident relates "
                             "them by a shared name (0: never; the worker's --stage2-merge-window; default "
                             f"{DEFAULT_GROUPING.merge_window_s:g}s)")
    parser.usage = "%(prog)s [options] FILE [FILE ...]"  # argparse's own would list every flag
    add_settings_flags(parser, only=REPLAY_SETTINGS)


def read_alerts(path: Path, source: str = "auto") -> list[Alert]:
    """Every alert in one recorded file, the source detected from its content unless named."""
    body = sys.stdin.buffer.read() if str(path) == "-" else path.read_bytes()
    kind = detect_source(body, max_bytes=None) if source == "auto" else source
    return parse(kind, body, max_bytes=None)


def read_topology(path: Path, max_hops: int) -> Topology:
    """A topology file; YAML when named .yaml/.yml, else JSON or YAML guessed from the content."""
    fmt = "yaml" if path.suffix.lower() in (".yaml", ".yml") else None
    return parse_topology(path.read_bytes(), fmt=fmt, max_hops=max_hops)


def replay_settings(args: argparse.Namespace) -> Settings:
    """The settings a replay runs with: its flags over the environment over the config file, as the worker's
    (`--mode`, `--lateness` are the worker's `window_mode`, `allowed_lateness`; `--gap`, `--hops`, `--burst`,
    `--merge-window` its `stage2_*` settings)."""
    return load_settings(args, window_mode=args.mode, allowed_lateness=args.lateness,
                         max_future_skew=args.max_future_skew, stage2_gap=args.gap, stage2_hops=args.hops,
                         stage2_burst=args.burst, stage2_merge_window=args.merge_window)


def replay_config(settings: Settings) -> CorrelationConfig:
    """Stage 1's rules for a recording: the worker's, with no horizon (a recording is old by nature) and no
    lateness unless one is set (a file is replayed in its own order)."""
    config = settings.correlation_config()
    lateness = config.allowed_lateness_s if "allowed_lateness" in settings.model_fields_set else 0.0
    return replace(config, allowed_lateness_s=lateness, time_guard=replace(config.time_guard, horizon_s=None))


def run(args: argparse.Namespace) -> int:
    """Replay the files in the order given and print the incidents; exit 2 on unreadable input."""
    settings = replay_settings(args)  # a bad one: SettingsError, one line and exit 2 (stream.cli)
    config = replay_config(settings)
    grouping = settings.grouping_config()
    topology = None
    topology_file = args.topology or settings.stage2_topology
    if topology_file is not None and args.stage == 2:
        try:
            topology = read_topology(topology_file, grouping.max_hops)
        except (OSError, TopologyError) as exc:
            print(f"aiops replay: {topology_file}: {exc}", file=sys.stderr)
            return 2
    alerts: list[Alert] = []
    for path in args.files:
        try:
            alerts.extend(read_alerts(path, args.source))
        except (OSError, SourceError) as exc:
            print(f"aiops replay: {path}: {exc}", file=sys.stderr)
            return 2
    guarded = guard_replay(alerts, time.time(), config.time_guard)
    if guarded.clamped:
        print(f"aiops replay: {guarded.clamped} alert(s) dated ahead of the recording's clock were placed where it "
              f"stood (label aiops_time_clamped)", file=sys.stderr)
    stage2: GroupingConfig | None = grouping if args.stage == 2 else None
    report = replay(guarded.alerts, config, grouping=stage2, topology=topology, lone_causes=settings.stage2_lone_causes)
    if args.json:
        sys.stdout.buffer.write(orjson.dumps(report.as_dict(), option=orjson.OPT_INDENT_2) + b"\n")
    else:
        print(render_text(report, config))
    return 0
