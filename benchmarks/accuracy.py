"""Stage-1 grouping accuracy on generated storms, per window size and mode, beside a real Alertmanager.

Part 1, the window sweep. Streams from `benchmarks/storms.py` (several seeds), in two families: `resolving`
(the generator's defaults: every alert resolves, a service+symptom storms again at least an hour after its
last storm ended) and `silent` (30% of storms never send resolutions, and a service+symptom may storm again
10 minutes after its last storm ended: the case where the window alone must separate two causes). In both,
10% of storms are placed across the top of the hour, crossing a boundary of every window size below. Streams
are parsed as `aiops replay` parses NDJSON and correlated by `correlator.replay` for each window size and both
modes: `tumbling` (an incident takes only alerts of its own epoch-aligned window) and `continuation` (the
default: it also takes alerts within one window of its span). Scored against the generator's truth (the storm
each alert belongs to): pairwise precision / recall / F1 over alerts, noise reduction (1 - incidents /
distinct alerts) and pages (incidents opened: the correlator pages once per incident).

Part 2, Alertmanager as a peer. The same kind of stream (the first hours of a seed, every storm that began in
them kept whole) is fed to Debian's Alertmanager on loopback, routed with `group_by: [service, alertname]`
to a webhook receiver run here. Alertmanager works in wall-clock time and the storms in event time, so time
is compressed by FACTOR (default 60: one storm hour is one wall minute) and every Alertmanager timer is
scaled by the same factor: its documented defaults group_wait 30s, group_interval 5m, repeat_interval 4h,
resolve_timeout 5m. The feeder acts as Prometheus does: a firing alert is posted when it starts and
re-posted every (scaled) minute with endsAt four (scaled) minutes ahead; a resolution is posted with its
endsAt; an alert that never resolves (silent storms) is posted without endsAt, as such sources do, and
Alertmanager resolves it after resolve_timeout. Every webhook notification is a page (re-sends by repeat_interval and resolved notifications too);
an alert belongs to the group of the first notification that shows it. Two readings of "group": the
groupKey alone (every storm of one service+alertname together, what a notification's title says), and the
groupKey's episode, which ends with a notification in which all its alerts are resolved (Alertmanager then
drops the aggregation group; PagerDuty folds the notifications of one groupKey into one incident until it
resolves). The correlator is scored on exactly the same alerts.

    python benchmarks/accuracy.py          # per family 5 seeds x 30,000 alerts; Alertmanager on 3 x 2 storm hours
    python benchmarks/accuracy.py --quick  # seconds: 2 small seeds, 3 windows, one 6-minute stream per family
    python benchmarks/accuracy.py --results benchmarks/RESULTS.md --plot benchmarks/f1_vs_window.png
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import orjson  # noqa: E402
from results_md import write_section  # noqa: E402
from storms import StormSpec, generate_timed  # noqa: E402

from correlator.config import CorrelationConfig, WindowMode  # noqa: E402
from correlator.models import Alert  # noqa: E402
from correlator.replay import replay  # noqa: E402
from correlator.scoring import PairwiseScore, pairwise_score  # noqa: E402
from correlator.sources import parse  # noqa: E402

__all__ = ["Stream", "SweepRow", "PeerRow", "stream_of", "sweep", "alertmanager_run", "main"]

SECTION = "## Alert-to-incident accuracy (stage 1) and Alertmanager as a peer"
BEGIN, END = "<!-- accuracy.py: generated from here -->", "<!-- accuracy.py: to here -->"
MODES: tuple[WindowMode, ...] = ("tumbling", "continuation")
WINDOWS_MIN = (1, 2, 5, 10, 15, 30, 60)
QUICK_WINDOWS_MIN = (1, 10, 60)
STRADDLE = 0.1
FAMILIES: dict[str, dict[str, float]] = {
    "resolving": {"straddle_share": STRADDLE},
    "silent": {"straddle_share": STRADDLE, "unresolved_share": 0.3, "min_gap_same_key_s": 600.0},
}
# Alertmanager's documented defaults, in seconds of event time (scaled by the compression factor)
AM_DEFAULTS_S = {"group_wait": 30.0, "group_interval": 300.0, "repeat_interval": 4 * 3600.0,
                 "resolve_timeout": 300.0}
# Prometheus's defaults for what it sends: re-send every minute, endsAt four re-send periods ahead
PROM_RESEND_S, PROM_VALID_S = 60.0, 240.0
HOST = "127.0.0.1"
AM_SEED = 101  # Alertmanager's streams come from seeds the sweep (which picks the best windows) never saw


# ---------------------------------------------------------------- streams


@dataclass(frozen=True, slots=True)
class Stream:
    """One generated stream: (arrival, record) in arrival order, the parsed alerts, truth fingerprint -> storm."""

    name: str
    family: str
    timed: list[tuple[float, dict[str, Any]]]
    alerts: list[Alert]
    truth: dict[str, str]

    @property
    def hours(self) -> float:
        """Event time from first to last arrival."""
        return (self.timed[-1][0] - self.timed[0][0]) / 3600.0 if self.timed else 0.0


def stream_of(seed: int, family: str = "resolving", *, alerts: int = 30_000, hours: float | None = None) -> Stream:
    """A seeded storm stream of a family (FAMILIES); with `hours`, only the storms whose first alert arrives
    within that many hours of the start, each kept whole (resolutions and re-sends)."""
    spec = StormSpec(alerts=alerts if hours is None else 10**9, seed=seed, **FAMILIES[family])  # type: ignore[arg-type]
    cut = spec.start + hours * 3600.0 if hours is not None else float("inf")
    kept: set[str] = set()
    timed: list[tuple[float, dict[str, Any]]] = []
    truth: dict[str, str] = {}
    for arrival, record, storm in generate_timed(spec):
        if arrival > cut + 2 * 3600.0:  # no storm lasts two hours: everything kept has arrived
            break
        if storm not in kept:
            if arrival >= cut:
                continue
            kept.add(storm)
        timed.append((arrival, record))
        truth[record["fingerprint"]] = storm
    body = b"\n".join(orjson.dumps(r) for _, r in timed)
    name = f"{family}, seed {seed}" + (f", {hours:g} h" if hours is not None else "")
    return Stream(name, family, timed, parse("generic", body, max_bytes=None), truth)


# ---------------------------------------------------------------- part 1: the window sweep


@dataclass(frozen=True, slots=True)
class Scored:
    """The correlator's grouping of one stream at one setting."""

    score: PairwiseScore
    pages: int
    alerts: int
    noise_reduction: float


def correlate(stream: Stream, window_s: float, mode: WindowMode) -> Scored:
    """Stage 1 at its defaults but for the window and mode, scored against the truth."""
    report = replay(stream.alerts, CorrelationConfig(window_s=window_s, mode=mode))
    predicted = {fp: inc.id for inc in report.incidents for fp in inc.members}
    return Scored(pairwise_score(predicted, stream.truth), len(report.incidents), report.alerts,
                  report.noise_reduction)


@dataclass(frozen=True, slots=True)
class SweepRow:
    """One family, mode and window over all seeds: means, and the worst seed's F1."""

    family: str
    mode: WindowMode
    window_min: float
    precision: float
    recall: float
    f1: float
    f1_min: float
    noise_reduction: float
    pages: float
    alerts: float

    def as_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {k: getattr(self, k) for k in self.__slots__}


def sweep(streams: Sequence[Stream], windows_min: Sequence[float]) -> list[SweepRow]:
    """Every mode x window over every stream of one family."""
    rows = []
    for mode in MODES:
        for w in windows_min:
            runs = [correlate(s, w * 60.0, mode) for s in streams]
            rows.append(SweepRow(
                streams[0].family, mode, w, _mean(r.score.precision for r in runs), _mean(r.score.recall for r in runs),
                _mean(r.score.f1 for r in runs), min(r.score.f1 for r in runs),
                _mean(r.noise_reduction for r in runs), _mean(r.pages for r in runs),
                _mean(r.alerts for r in runs)))
    return rows


def best(rows: Sequence[SweepRow], family: str, mode: WindowMode) -> SweepRow:
    """The window with the highest mean F1 in a family and mode (the smaller window on a tie)."""
    return max((r for r in rows if r.family == family and r.mode == mode),
               key=lambda r: (round(r.f1, 6), -r.window_min))


def _mean(values: Iterator[float] | Sequence[float]) -> float:
    return statistics.fmean(values)


# ---------------------------------------------------------------- part 2: Alertmanager


class Receiver:
    """The webhook Alertmanager notifies: a stdlib HTTP server thread keeping (wall time, payload)."""

    def __init__(self) -> None:
        self.notifications: list[tuple[float, dict[str, Any]]] = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with receiver.lock:
                    receiver.notifications.append((time.time(), json.loads(body)))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer((HOST, 0), Handler)
        threading.Thread(target=self.server.serve_forever, name="am-webhook", daemon=True).start()

    @property
    def url(self) -> str:
        """Where Alertmanager posts."""
        return f"http://{HOST}:{self.server.server_address[1]}/webhook"

    def last_at(self) -> float:
        """Wall time of the latest notification (0 before the first)."""
        with self.lock:
            return self.notifications[-1][0] if self.notifications else 0.0

    def stop(self) -> None:
        """Shut the server down."""
        self.server.shutdown()
        self.server.server_close()


def _duration(seconds: float) -> str:
    """Alertmanager's duration syntax takes integers only: milliseconds."""
    return f"{max(1, round(seconds * 1000))}ms"


def am_config(webhook_url: str, factor: float, group_by: Sequence[str] = ("service", "alertname")) -> dict[str, Any]:
    """Alertmanager's defaults scaled by `factor`, grouping by `group_by`, one webhook receiver."""
    t = {k: _duration(v / factor) for k, v in AM_DEFAULTS_S.items()}
    return {
        "global": {"resolve_timeout": t["resolve_timeout"]},
        "route": {"receiver": "oncall", "group_by": list(group_by), "group_wait": t["group_wait"],
                  "group_interval": t["group_interval"], "repeat_interval": t["repeat_interval"]},
        "receivers": [{"name": "oncall", "webhook_configs": [{"url": webhook_url, "send_resolved": True,
                                                                "max_alerts": 0}]}],
    }


def _iso(wall: float) -> str:
    return datetime.fromtimestamp(wall, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(slots=True)
class Feed:
    """What the feeder did: posts, alerts posted, and how late it ran behind the compressed schedule."""

    posts: int = 0
    alerts_posted: int = 0
    max_lag_s: float = 0.0
    error: str | None = None


def feed(am_url: str, stream: Stream, factor: float, start_wall: float, out: Feed) -> None:
    """Post the stream to Alertmanager's v2 API in compressed time, re-posting firing alerts as Prometheus does."""
    e0 = stream.timed[0][0]

    def wall(event_t: float) -> float:
        return start_wall + (event_t - e0) / factor

    resend, valid = PROM_RESEND_S / factor, PROM_VALID_S / factor
    resolves = {rec["fingerprint"] for _, rec in stream.timed if rec["status"] == "resolved"}
    firing: dict[tuple[tuple[str, str], ...], dict[str, Any]] = {}
    i, n, next_resend = 0, len(stream.timed), start_wall + resend
    try:
        while i < n:  # every storm is kept whole, so its alerts have all resolved by the last record
            now = time.time()
            batch: dict[tuple[tuple[str, str], ...], dict[str, Any]] = {}
            while i < n and wall(stream.timed[i][0]) <= now:
                out.max_lag_s = max(out.max_lag_s, now - wall(stream.timed[i][0]))
                rec = stream.timed[i][1]
                ident = tuple(sorted(rec["labels"].items()))
                doc = {"labels": rec["labels"], "annotations": {"fingerprint": rec["fingerprint"]},
                       "startsAt": _iso(wall(rec["starts_at"]))}
                if rec["status"] == "firing" and rec["fingerprint"] not in resolves:
                    batch[ident] = doc  # no endsAt: Alertmanager resolves it after resolve_timeout
                elif rec["status"] == "firing":
                    firing[ident] = doc
                    batch[ident] = {**doc, "endsAt": _iso(now + valid)}
                else:
                    firing.pop(ident, None)
                    batch[ident] = {**doc, "endsAt": _iso(min(wall(rec["ends_at"]), now))}
                i += 1
            if now >= next_resend:
                for ident, doc in firing.items():
                    batch.setdefault(ident, {**doc, "endsAt": _iso(now + valid)})
                next_resend += resend
            if batch:
                _post(am_url + "/api/v2/alerts", list(batch.values()))
                out.posts += 1
                out.alerts_posted += len(batch)
            upcoming = min(wall(stream.timed[i][0]) if i < n else now, next_resend)
            time.sleep(max(0.0, min(upcoming - time.time(), 0.5)))
    except Exception as exc:  # reported in the result, never swallowed: the run is marked failed
        out.error = f"{type(exc).__name__}: {exc}"


def _post(url: str, alerts: list[dict[str, Any]]) -> None:
    req = urllib.request.Request(url, data=orjson.dumps(alerts), method="POST",
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        resp.read()


@dataclass(slots=True)
class AmGrouping:
    """Alertmanager's notifications read back: pages and the two groupings of alerts."""

    notifications: int
    firing_notifications: int
    resolved_only: int
    repeats: int
    episode_of: dict[str, str] = field(default_factory=dict)
    group_key_of: dict[str, str] = field(default_factory=dict)


def read_notifications(notifications: Sequence[tuple[float, dict[str, Any]]]) -> AmGrouping:
    """Each alert to the first notification that shows it: its groupKey, and its groupKey's episode.

    An episode ends with a notification whose alerts are all resolved. A repeat is a notification with the
    same alerts, in the same states, as the previous one of its groupKey (what repeat_interval sends).
    """
    episode: dict[str, int] = defaultdict(int)
    previous: dict[str, frozenset[tuple[str, str, str]]] = {}
    out = AmGrouping(len(notifications), 0, 0, 0)
    for _, note in sorted(notifications, key=lambda x: x[0]):
        gk, alerts = note["groupKey"], note["alerts"]
        state = frozenset((a["annotations"]["fingerprint"], a["startsAt"], a["status"]) for a in alerts)
        out.repeats += previous.get(gk) == state
        previous[gk] = state
        for a in alerts:
            fp = a["annotations"]["fingerprint"]
            out.episode_of.setdefault(fp, f"{gk}#{episode[gk]}")
            out.group_key_of.setdefault(fp, gk)
        if all(a["status"] == "resolved" for a in alerts):
            episode[gk] += 1
            out.resolved_only += 1
        else:
            out.firing_notifications += 1
    return out


@dataclass(slots=True)
class AmRun:
    """One stream through Alertmanager."""

    stream: Stream
    grouping: AmGrouping | None = None
    feed: Feed = field(default_factory=Feed)
    wall_s: float = 0.0


def alertmanager_run(streams: Sequence[Stream], factor: float, workdir: Path,
                     group_by: Sequence[str] = ("service", "alertname")) -> list[AmRun]:
    """Each stream through its own Alertmanager, all at once (each wall minute is an event hour for all)."""
    from tests.promstack import start_alertmanager  # the tests' launcher: loopback port, stopped by pid

    runs = [AmRun(s) for s in streams]
    procs, receivers, threads = [], [], []
    try:
        for n in range(len(runs)):
            receiver = Receiver()
            receivers.append(receiver)
            d = workdir / f"am{n}"
            d.mkdir(parents=True, exist_ok=True)
            procs.append(start_alertmanager(d, receiver.url, config=am_config(receiver.url, factor, group_by),
                                            log_level="warn"))
        start = time.time() + 1.0
        for proc, run in zip(procs, runs, strict=True):
            t = threading.Thread(target=feed, args=(proc.url, run.stream, factor, start, run.feed), daemon=True)
            t.start()
            threads.append(t)
        for t in threads:
            t.join()
        _drain(receivers, factor)
        for run, receiver in zip(runs, receivers, strict=True):
            run.grouping = read_notifications(receiver.notifications)
            run.wall_s = time.time() - start
    finally:
        for proc in procs:
            proc.stop()
        for receiver in receivers:
            receiver.stop()
    return runs


def _drain(receivers: Sequence[Receiver], factor: float) -> None:
    """Wait for the last notifications: until none came for two group intervals (at most eight)."""
    interval = AM_DEFAULTS_S["group_interval"] / factor
    quiet, deadline = 2 * interval + AM_DEFAULTS_S["group_wait"] / factor + 0.5, time.time() + 8 * interval
    while time.time() < deadline:
        if time.time() - max(r.last_at() for r in receivers) > quiet:
            return
        time.sleep(0.2)


@dataclass(frozen=True, slots=True)
class PeerRow:
    """One method on one Alertmanager stream."""

    family: str
    stream: str
    method: str
    pages: int
    firing_pages: int
    groups: int
    precision: float
    recall: float
    f1: float
    noise_reduction: float

    def as_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {k: getattr(self, k) for k in self.__slots__}


def peer_rows(run: AmRun, windows: Sequence[tuple[WindowMode, float]]) -> list[PeerRow]:
    """The correlator at the given settings and Alertmanager's two readings, on one stream."""
    assert run.grouping is not None
    g, s = run.grouping, run.stream
    rows = []
    for mode, w in windows:
        c = correlate(s, w * 60.0, mode)
        rows.append(PeerRow(s.family, s.name, f"correlator, {mode}, {w:g} min window", c.pages, c.pages, c.pages,
                            c.score.precision, c.score.recall, c.score.f1, c.noise_reduction))
    alerts = correlate(s, 600.0, "continuation").alerts
    for label, of in ((AM_EPISODES, g.episode_of), (AM_GROUPKEY, g.group_key_of)):
        sc = pairwise_score(of, s.truth)
        groups = len(set(of.values()))
        rows.append(PeerRow(s.family, s.name, label, g.notifications, g.firing_notifications, groups,
                            sc.precision, sc.recall, sc.f1, 1.0 - groups / alerts if alerts else 0.0))
    return rows


def peer_settings(rows: Sequence[SweepRow], family: str) -> list[tuple[WindowMode, float]]:
    """The best window of each mode in the sweep, and the default (continuation, 10 min) when not among them."""
    settings = [(mode, best(rows, family, mode).window_min) for mode in MODES]
    if ("continuation", 10) not in settings:
        settings.append(("continuation", 10))
    return settings


AM_EPISODES, AM_GROUPKEY = "Alertmanager, groupKey episodes", "Alertmanager, groupKey"


# ---------------------------------------------------------------- output


def sweep_table(rows: Sequence[SweepRow]) -> list[str]:
    """Markdown table of the sweep."""
    lines = ["| family | mode | window | precision | recall | F1 | F1, worst seed | noise reduction | "
             "pages per stream |", "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r.family} | {r.mode} | {r.window_min:g} min | {r.precision:.3f} | {r.recall:.3f} | "
                     f"{r.f1:.3f} | {r.f1_min:.3f} | {r.noise_reduction:.1%} | {r.pages:,.0f} |")
    return lines


def peer_table(rows: Sequence[PeerRow]) -> list[str]:
    """Markdown table of the peer comparison."""
    lines = ["| stream | method | pages (notifications) | with firing alerts | groups | precision | recall | F1 "
             "| noise reduction |", "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r.stream} | {r.method} | {r.pages:,} | {r.firing_pages:,} | {r.groups:,} | "
                     f"{r.precision:.3f} | {r.recall:.3f} | {r.f1:.3f} | {r.noise_reduction:.1%} |")
    return lines


def _pages_line(family: str, peers: Sequence[PeerRow]) -> str:
    mine = [p for p in peers if p.family == family]
    am = sum(p.pages for p in mine if p.method == AM_EPISODES)
    am_firing = sum(p.firing_pages for p in mine if p.method == AM_EPISODES)
    streams = len({p.stream for p in mine})
    parts = []
    for method in dict.fromkeys(p.method for p in mine if p.method.startswith("correlator")):
        ours = sum(p.pages for p in mine if p.method == method)
        f1 = statistics.fmean(p.f1 for p in mine if p.method == method)
        parts.append(f"{method}: {ours:,} ({ours / am:.1%} of Alertmanager's, F1 {f1:.3f})" if am else method)
    am_f1 = statistics.fmean(p.f1 for p in mine if p.method == AM_EPISODES)
    return (f"Pages over the {streams} {family} streams: Alertmanager alone {am:,} notifications ({am_firing:,} "
            f"with firing alerts; episodes F1 {am_f1:.3f}); incidents opened by the " + "; ".join(parts) + ".")


def section(sweep_rows: Sequence[SweepRow], streams: Sequence[Stream], runs: Sequence[AmRun] | None,
            peers: Sequence[PeerRow], factor: float, command: str, seconds: float) -> str:
    """The generated part of RESULTS.md."""
    lines = [BEGIN]
    for family in FAMILIES:
        fs = [s for s in streams if s.family == family]
        lines.append(f"- {family}: {len(fs)} seeds ({', '.join(s.name.split(', ')[1] for s in fs)}), about "
                     f"{_mean([float(len(s.timed)) for s in fs]):,.0f} records, "
                     f"{_mean([float(len(s.truth)) for s in fs]):,.0f} alert fingerprints and "
                     f"{_mean([float(len(set(s.truth.values()))) for s in fs]):,.0f} storms each, over "
                     f"{_mean([s.hours for s in fs]):.1f} storm hours.")
    lines += ["", "Means over seeds; pages = incidents opened.", "", *sweep_table(sweep_rows), ""]
    for family in FAMILIES:
        for mode in MODES:
            b = best(sweep_rows, family, mode)
            lines.append(f"- Best window, {family}, {mode}: {b.window_min:g} min, F1 {b.f1:.3f} "
                         f"(worst seed {b.f1_min:.3f}).")
    lines.append("")
    if runs is None:
        lines.append("Alertmanager: not run.")
    else:
        t = {k: v / factor for k, v in AM_DEFAULTS_S.items()}
        lines += [f"Alertmanager as a peer: {len(runs)} streams (held-out seeds; the storms that began in the "
                  f"first {runs[0].stream.name.split(', ')[-1]} of each), all at once, time compressed "
                  f"{factor:g}x (one storm hour = {60 / factor:g} wall minutes), timers scaled alike: group_wait "
                  f"{t['group_wait']:g}s, group_interval {t['group_interval']:g}s, repeat_interval "
                  f"{t['repeat_interval']:g}s, resolve_timeout {t['resolve_timeout']:g}s (wall). The feeder ran at "
                  f"most {max(r.feed.max_lag_s for r in runs) * factor:.0f} s of event time behind the "
                  f"compressed schedule; {sum(r.grouping.repeats for r in runs if r.grouping)} notifications "
                  "were unchanged re-sends (repeat_interval).", "", *peer_table(peers), ""]
        lines += [f"- {_pages_line(family, peers)}" for family in FAMILIES if any(p.family == family for p in peers)]
        lines.append("")
    lines.append(f"Machine: {os.cpu_count()} CPUs (`nproc`, shared with other jobs), Python "
                 f"{platform.python_version()} ({platform.machine()}, {platform.system()}), Alertmanager "
                 f"{_am_version()}. Command: `{command}` ({seconds:.0f} s).")
    lines.append(END)
    return "\n".join(lines)


def _am_version() -> str:
    from tests.promstack import ALERTMANAGER
    try:
        out = subprocess.run([str(ALERTMANAGER), "--version"], capture_output=True, text=True, timeout=10)
        return (out.stdout or out.stderr).split()[2]
    except (OSError, IndexError, ValueError):
        return "unknown"


def plot(rows: Sequence[SweepRow], peers: Sequence[PeerRow], path: Path) -> None:
    """Per family, F1 vs window size for both modes (worst seed dotted), Alertmanager as horizontal lines."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import NullFormatter, ScalarFormatter

    families = [f for f in FAMILIES if any(r.family == f for r in rows)]
    fig, axes = plt.subplots(1, len(families), figsize=(6.2 * len(families), 4.4), dpi=110, squeeze=False)
    for ax, family in zip(axes[0], families, strict=True):
        for mode, colour in zip(MODES, ("tab:orange", "tab:blue"), strict=True):
            rs = [r for r in rows if r.family == family and r.mode == mode]
            x = [r.window_min for r in rs]
            ax.plot(x, [r.f1 for r in rs], "o-", color=colour, label=f"correlator, {mode} (mean of seeds)")
            ax.plot(x, [r.f1_min for r in rs], ":", color=colour, label=f"correlator, {mode} (worst seed)")
        for label, style in ((AM_EPISODES, "--"), (AM_GROUPKEY, "-.")):
            f1s = [p.f1 for p in peers if p.family == family and p.method == label]
            if f1s:
                ax.axhline(statistics.fmean(f1s), color="tab:red", linestyle=style, label=f"{label} (no window)")
        ax.set_xscale("log")
        ax.set_xticks(sorted({r.window_min for r in rows}))
        ax.xaxis.set_major_formatter(ScalarFormatter())
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_xlabel("window size (minutes, log scale)")
        ax.set_ylabel("pairwise F1 against the generator's truth")
        ax.set_ylim(0, 1.02)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="lower right")
        ax.set_title(f"{family} storms")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


# ---------------------------------------------------------------- entry point


def _alertmanager_available() -> bool:
    from tests.promstack import ALERTMANAGER
    return os.access(ALERTMANAGER, os.X_OK)


def main(argv: list[str] | None = None) -> int:
    """Run both parts, print the section (and --json a summary line), optionally write RESULTS.md and the PNG."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="seconds: small streams, 3 windows, one short AM run")
    p.add_argument("--seeds", type=int, nargs="+", default=None, help="sweep seeds (default 1 2 3 4 5)")
    p.add_argument("--alerts", type=int, default=None, help="alerts per sweep stream (default 30000)")
    p.add_argument("--am-streams", type=int, default=None,
                   help="Alertmanager streams per family (held-out seeds 101.., default 3)")
    p.add_argument("--am-hours", type=float, default=None, help="storm hours per AM stream (default 2)")
    p.add_argument("--factor", type=float, default=None, help="time compression for AM (default 60)")
    p.add_argument("--no-alertmanager", action="store_true", help="the window sweep only")
    p.add_argument("--results", type=Path, help="rewrite this benchmark's section of this RESULTS.md")
    p.add_argument("--plot", type=Path, help="write the F1-vs-window PNG here")
    p.add_argument("--json", action="store_true", help="print a JSON summary as the last line")
    args = p.parse_args(argv)
    q = args.quick
    seeds = args.seeds or ([1, 2] if q else [1, 2, 3, 4, 5])
    alerts = args.alerts or (3_000 if q else 30_000)
    am_streams = args.am_streams or (1 if q else 3)
    am_hours = args.am_hours or (0.1 if q else 2.0)
    factor = args.factor or (120.0 if q else 60.0)
    windows = QUICK_WINDOWS_MIN if q else WINDOWS_MIN
    began = time.time()

    streams = [stream_of(s, family, alerts=alerts) for family in FAMILIES for s in seeds]
    rows = [row for family in FAMILIES for row in sweep([s for s in streams if s.family == family], windows)]
    runs: list[AmRun] | None = None
    peers: list[PeerRow] = []
    if args.no_alertmanager:
        pass
    elif _alertmanager_available():
        with tempfile.TemporaryDirectory(prefix="aiops-am-bench-") as tmp:
            am_in = [stream_of(AM_SEED + n, family, hours=am_hours) for family in FAMILIES for n in range(am_streams)]
            runs = alertmanager_run(am_in, factor, Path(tmp))
        failed = [r.feed.error for r in runs if r.feed.error]
        if failed:
            print(f"accuracy.py: feeding Alertmanager failed: {failed}", file=sys.stderr)
            return 1
        settings = {family: peer_settings(rows, family) for family in FAMILIES}
        peers = [row for run in runs for row in peer_rows(run, settings[run.stream.family])]
    elif os.environ.get("CI", "").strip().lower() in {"true", "1", "yes"}:
        print("accuracy.py: /usr/bin/prometheus-alertmanager missing (apt-get install prometheus-alertmanager)",
              file=sys.stderr)
        return 1
    command = "python benchmarks/accuracy.py" + (" --quick" if q else "")
    text = section(rows, streams, runs, peers, factor, command, time.time() - began)
    print(text)
    if args.results is not None:
        write_section(args.results, text, begin=BEGIN, end=END, heading=SECTION)
    if args.plot is not None:
        plot(rows, peers, args.plot)
    if args.json:
        print(json.dumps({"sweep": [r.as_dict() for r in rows], "peers": [r.as_dict() for r in peers],
                          "alertmanager": runs is not None, "plot": str(args.plot) if args.plot else None}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
