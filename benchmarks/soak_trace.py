"""`benchmarks/soak.py` with a trace: every record its tails read from `incidents` and from stage 2's route topic, one
JSON line each, and two readers of that trace. Session 38's trace scripts lived in /tmp and were lost; these are
session 39's (across39), kept so that the next look at a chaos soak's pages starts from a trace.

    TRACE=/tmp/t.jsonl python benchmarks/soak_trace.py --quick --only chaos --keep DIR   # soak.py's flags
    python benchmarks/soak_trace.py --parents /tmp/t.jsonl par-1,par-2   # the parents, assignments, children's routes
    python benchmarks/soak_trace.py --late /tmp/t.jsonl                  # children that came behind stage 2
    python benchmarks/soak_trace.py --unnamed /tmp/t.jsonl               # children routed before the loss, never named
    python benchmarks/soak_trace.py --covered /tmp/t.jsonl inc-1,inc-2     # when stage 2's progress first covered them

A line holds `t` (`inc` or `route`), `gen` (0 before the broker restart, 1 after), partition `p`, offset `o`, the
producer timestamp `ts` and the read time `read`; a route record its `marks` header and its events `evs` as [id, key,
seq, status, first alert, last alert, emitted_at] and the names of its other headers `h` (a restated record's, say);
an `incidents` record its kind `k` (`ev`, `par`, `asg`) and fields.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from pathlib import Path
from typing import Any

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import soak  # noqa: E402

from correlator.models import IncidentEvent  # noqa: E402
from correlator.stage2 import MARKS_HEADER, Assignment, ParentEvent  # noqa: E402
from stream.incident_records import decode_incident_record  # noqa: E402

SOURCES = 4
"""Stage-1 partitions the soak's deployment runs (`alerts`): the sources of each route partition's low watermark."""
LATENESS_S = 5.0
"""Stage 2's lateness (`GroupingConfig.lateness_s`' default): its release point is the low watermark less it."""


def describe(routed: bool, record: Any, generation: int) -> dict[str, Any]:
    """One trace line for a record read by a tail."""
    line: dict[str, Any] = {"t": "route" if routed else "inc", "gen": generation, "p": record.partition,
                            "o": record.offset, "ts": record.timestamp / 1000, "read": time.time()}
    headers = dict(record.headers or ())
    if routed:
        if MARKS_HEADER in headers:
            line["marks"] = orjson.loads(headers[MARKS_HEADER])
        if set(headers) - {MARKS_HEADER}:
            line["h"] = sorted(set(headers) - {MARKS_HEADER})
        try:
            line["evs"] = [[e["incident_id"], e["key"], e["seq"], e["status"], e["first_seen"], e["last_seen"],
                            e["emitted_at"]] for e in orjson.loads(record.value or b"[]")]
        except (orjson.JSONDecodeError, KeyError, TypeError):
            line["bad"] = True
        return line
    try:
        rec = decode_incident_record(record.value, list(record.headers or ()))
    except ValueError:
        line["bad"] = True
        return line
    if isinstance(rec, IncidentEvent):
        line.update(k="ev", id=rec.incident_id, key=rec.key, seq=rec.seq, st=rec.status, fs=rec.first_seen,
                    ls=rec.last_seen, em=rec.emitted_at)
    elif isinstance(rec, ParentEvent):
        line.update(k="par", id=rec.parent_id, kind=rec.kind, seq=rec.seq, st=rec.status, ch=rec.children,
                    em=rec.emitted_at, reason=rec.reason, merged_into=rec.merged_into)
    elif isinstance(rec, Assignment):
        line.update(k="asg", id=rec.child_id, parent=rec.parent_id, rel=rec.relation.value, at=rec.assigned_at,
                    why=rec.explanation)
    else:
        line.update(k=type(rec).__name__, v=rec.model_dump(mode="json"))
    return line


def traced(out: Any, lock: threading.Lock) -> Any:
    """A `soak.Tail.record_hook` that writes a line per record to `out`."""

    def hook(routed: bool, record: Any, generation: int) -> None:
        with lock:
            out.write(orjson.dumps(describe(routed, record, generation)) + b"\n")

    return hook


def load(trace: str) -> list[dict[str, Any]]:
    """The trace's lines."""
    with open(trace, "rb") as f:
        return [orjson.loads(line) for line in f]


def named_by(lines: list[dict[str, Any]]) -> dict[str, str]:
    """Child -> the parent that named it last (a parent event's children, or an assignment)."""
    named: dict[str, str] = {}
    for d in lines:
        if d.get("k") == "par":
            named.update({c: d["id"] for c in d["ch"]})
        elif d.get("k") == "asg":
            named[d["id"]] = d["parent"]
    return named


def late(lines: list[dict[str, Any]]) -> list[tuple[int, int, int, str, float, str | None]]:
    """Children that reached a route partition behind its release point, rebuilt from the marks as stage 2 takes them
    (idle sources not waited for; silence is not modelled, so this can under-count): (generation, partition, offset,
    child, seconds behind, the parent that named it)."""
    named, found = named_by(lines), []
    for gen in (0, 1):
        marks: dict[int, dict[int, tuple[float, bool]]] = {p: {} for p in range(SOURCES)}
        released = {p: float("-inf") for p in range(SOURCES)}
        seen: set[str] = set()
        for d in lines:
            if d.get("t") != "route" or d["gen"] != gen or "evs" not in d:
                continue
            p = d["p"]
            for e in d["evs"]:
                if e[0] not in seen:
                    seen.add(e[0])
                    if e[4] < released[p]:
                        found.append((gen, p, d["o"], e[0], round(released[p] - e[4], 1), named.get(e[0])))
            for source, (at, idle) in (d.get("marks") or {}).items():
                old = marks[p].get(int(source))
                at = float("-inf") if at is None else at
                marks[p][int(source)] = (max(at, old[0]) if old else at, idle)
            waiting = [m[0] for m in marks[p].values() if not m[1]] + [float("-inf")] * (SOURCES - len(marks[p]))
            low = min(waiting) if waiting else max(m[0] for m in marks[p].values())
            released[p] = max(released[p], low - LATENESS_S)
    return found


def unnamed(lines: list[dict[str, Any]]) -> list[tuple[int, int, float, list[str], int, list[str]]]:
    """The routing records of generation 0 (before the broker restart) that carry a new child (its first event, seq 1)
    no cause ever named, in either generation: stage 2 never grouped it, and notify, if it read the child on
    `incidents`, pages it alone at the cause wait. Per record: (partition, offset, producer time, those children,
    how many new children it carried, those of them the trace saw on `incidents` before the restart). The records
    of a partition past stage 2's last checkpoint at the loss show as a run of them at its end (lone41)."""
    named = named_by(lines)
    on_incidents = {d["id"] for d in lines if d.get("k") == "ev" and d["gen"] == 0}
    found = []
    for d in lines:
        if d.get("t") != "route" or d["gen"] != 0 or "evs" not in d:
            continue
        new = [e[0] for e in d["evs"] if e[2] == 1]
        never = [c for c in new if c not in named]
        if never:
            found.append((d["p"], d["o"], d["ts"], never, len(new), [c for c in never if c in on_incidents]))
    return found


def covered(lines: list[dict[str, Any]], wanted: set[str]) -> list[tuple[str, int, float, int | None, float | None]]:
    """When stage 2's progress first covered each `wanted` incident in each generation: notify pages an incident no
    assignment names once every routing partition's progress reaches its first alert (`stage2_lone_causes` off, the
    default), after the route's hold. Per incident and generation: (incident, its `incidents` partition, first
    alert, generation, producer time of the first `Progress` on that partition whose lowest `decided` reaches it;
    None, None when none did in any)."""
    first: dict[str, tuple[float, int]] = {}
    for d in lines:
        if d.get("k") == "ev" and d["id"] in wanted:
            first.setdefault(d["id"], (d["fs"], d["p"]))
    out: list[tuple[str, int, float, int | None, float | None]] = []
    for child, (fs, p) in sorted(first.items()):
        hits = {}
        for d in lines:
            if d.get("k") == "Progress" and d["p"] == p and d["gen"] not in hits \
                    and min(d["v"]["decided"].values()) >= fs:
                hits[d["gen"]] = d["ts"]
        out += [(child, p, fs, gen, ts) for gen, ts in sorted(hits.items())] or [(child, p, fs, None, None)]
    return out


def parents(lines: list[dict[str, Any]], wanted: set[str]) -> list[str]:
    """The events of the `wanted` parents, the assignments into them, and the route records of their children."""
    out, kids = [], named_by([d for d in lines if d.get("k") != "par" or d["id"] in wanted])
    kids = {c: p for c, p in kids.items() if p in wanted}
    for d in lines:
        if d.get("k") == "par" and d["id"] in wanted:
            out.append(f"parent gen {d['gen']} p{d['p']}@{d['o']} {d['id']} {d['kind']} seq {d['seq']} {d['st']} "
                       f"{len(d['ch'])} children at {d['em']}")
        elif d.get("k") == "asg" and d["parent"] in wanted:
            out.append(f"assigned gen {d['gen']} p{d['p']}@{d['o']} {d['id']} -> {d['parent']} {d['rel']} at {d['at']}")
        elif d.get("t") == "route":
            for e in d.get("evs", []):
                if e[0] in kids:
                    out.append(f"routed gen {d['gen']} p{d['p']}@{d['o']} ts {d['ts']:.2f} {e[0]} seq {e[2]} first "
                               f"{e[4]} emitted {e[6]} marks {d.get('marks')}")
    return out


def _hms(ts: float) -> str:
    """A UTC time of day with milliseconds."""
    return time.strftime("%H:%M:%S", time.gmtime(ts)) + f"{ts % 1:.3f}"[1:]


def main(argv: list[str]) -> int:
    if argv[:1] == ["--late"]:
        for row in late(load(argv[1])):
            print(*row)
        return 0
    if argv[:1] == ["--unnamed"]:
        for p, o, ts, never, new, read in unnamed(load(argv[1])):
            print(f"p{p}@{o} ts {_hms(ts)}: {len(never)} of {new} new children never named ({len(read)} of them on "
                  f"incidents before the restart): {' '.join(never)}")
        return 0
    if argv[:1] == ["--covered"]:
        for child, p, fs, gen, ts in covered(load(argv[1]), set(argv[2].split(","))):
            said = "never covered" if ts is None else f"covered in generation {gen} by a progress produced at {_hms(ts)}"
            print(f"{child} incidents p{p} first alert {fs}: {said}")
        return 0
    if argv[:1] == ["--parents"]:
        print("\n".join(parents(load(argv[1]), set(argv[2].split(",")))))
        return 0
    lock = threading.Lock()
    with open(os.environ["TRACE"], "ab", buffering=0) as out:
        soak.Tail.record_hook = traced(out, lock)
        return soak.main(argv)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
