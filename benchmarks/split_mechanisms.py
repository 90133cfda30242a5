"""Why a fault's pieces stay out of its main parent, on development data only (issue 17, session 31, noise17c).

For every stage-1 incident of a fault that stage 2 did not put into the fault's main parent (the parent holding
most of its alerts), this looks at the moment the incident was placed and charges the split pairs (its alerts of the
fault x the fault's alerts in the main parent) to one mechanism:

* `S1 noise-opened`: the incident's first alert is noise (stage 1 opened it on a background alert);
* `main not open yet`: no group that ends up as the main parent existed yet (the piece started first);
* `main out of gap`: that group was no longer accepting, or the piece started beyond its reach + gap;
* `no relation, t-onset <=N s`: the piece shares no name (and no namespace) with that group, N s after the group's
  latest child onset; for the first 20 s, how many names the piece has and how many groups took a child in the
  20 s before it (the burst-follow rule takes one name and one group);
* `refused by kind (weak|caller|...)`: related, but by a kind the rules do not take then (`engine._admits`);
* `company refused (lone)`: related, but it started alone long after the reach (`engine`, company);
* `main capped` / `admitted but went elsewhere`.

It reads the engine's private state through a subclass (a diagnostic, never a product path) and never builds a
held-out seed.

    python benchmarks/split_mechanisms.py                      # every development set, rule as shipped
    python benchmarks/split_mechanisms.py --without-burst-follow
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path
from unittest import mock

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import rca_sets  # noqa: E402
from accuracy_rca import development_sets, stage2_report  # noqa: E402
from rca_sets import DataSet  # noqa: E402

import correlator.replay  # noqa: E402
from correlator.keys import split_key  # noqa: E402
from correlator.models import IncidentEvent  # noqa: E402
from correlator.stage2 import Assignment, GroupingConfig, GroupingOutput, ParentEvent  # noqa: E402
from correlator.stage2.engine import Grouper  # noqa: E402
from correlator.stage2.relations import Link, time_gap, view_of  # noqa: E402


@dataclass(slots=True)
class _Seen:
    """One open group of the child's scope as it stood when the child was placed."""

    id: str
    onset: float
    accepting: bool
    in_gap: bool
    raw: Link | None
    admitted: Link | None
    capped: bool


@dataclass(slots=True)
class _Placed:
    t: float
    names: int
    alone: bool
    groups: list[_Seen]


class _Spy(Grouper):
    """The engine, noting what each child met when it was placed."""

    seen: dict[str, _Placed] = {}

    def _assign(self, ev: IncidentEvent, first_seq: int, now: float, out: GroupingOutput) -> None:
        scope, t = split_key(ev.key)[0], ev.first_seen
        view = view_of(ev, self.config, self.topology)
        groups = []
        for _, g in self.store.items():
            if g.scope != scope or not g.children or not g.first_seen - 600 <= t <= g.last_seen + 600:
                continue
            raw = self._link(ev, view, g)
            groups.append(_Seen(g.id, g.last_onset, g.accepting,
                                time_gap(t, g.first_seen, g.reach, self.config.gap_s) is not None, raw,
                                self._admitted(ev, view, g) if raw is not None else None,
                                bool(self._capped_reason(g, t))))
        self.seen[ev.incident_id] = _Placed(t, len(view.entities), self._alone(ev, scope), groups)
        super()._assign(ev, first_seq, now, out)


def _noise(fault: str) -> bool:
    return fault.startswith("noise-")


def _kind(placed: _Placed, mains: list[_Seen]) -> str:
    if not mains:
        return "main not open yet (piece first)"
    g = max(mains, key=lambda s: (s.accepting and s.in_gap, s.onset))
    late = placed.t - g.onset
    if not g.accepting or not g.in_gap:
        return "main out of gap"
    if g.raw is None:
        band = next((f"<={b}" for b in (20, 60, 120) if late <= b), ">120")
        if band != "<=20":
            return f"no relation, t-onset {band}"
        window = sum(1 for s in placed.groups if s.accepting and placed.t - 20 <= s.onset <= placed.t)
        return f"no relation, t-onset <=20, names {min(placed.names, 3)}, groups in window {min(window, 3)}"
    if g.admitted is None:
        kind = "weak" if g.raw.weak else "caller" if g.raw.caller else g.raw.relation.value
        return f"refused by kind ({kind})"
    if placed.alone:
        return "company refused (lone)"
    return "main capped" if g.capped else "admitted but went elsewhere"


def mechanisms(data: DataSet, grouping: GroupingConfig) -> Counter[str]:
    """Split pairs of `data` (pieces x main parent) by mechanism."""
    _Spy.seen = {}
    merged_into: dict[str, str] = {}

    def hear(ev: IncidentEvent | ParentEvent | Assignment) -> None:
        if isinstance(ev, ParentEvent) and ev.merged_into:
            merged_into[ev.parent_id] = ev.merged_into

    with mock.patch.object(correlator.replay, "Grouper", _Spy):
        report = stage2_report(data, grouping, False, listener=hear)
    assert report.parents is not None

    def final(gid: str) -> str:
        while gid in merged_into:
            gid = merged_into[gid]
        return gid

    truth = data.truth
    cells: dict[str, Counter[str]] = defaultdict(Counter)
    for p in report.parents:
        for fp in p.members:
            cells[truth[fp]][p.id] += 1
    main = {f: c.most_common(1)[0][0] for f, c in cells.items()}
    out: Counter[str] = Counter()
    for inc in report.incidents:
        fault, n = Counter(truth[fp] for fp in inc.members).most_common(1)[0]
        if _noise(fault) or inc.parent is None or inc.parent.parent_id == main[fault]:
            continue
        pairs = n * cells[fault][main[fault]]
        placed = _Spy.seen.get(inc.id)
        if placed is None:
            out["not placed by stage 2"] += pairs
        elif _noise(truth[inc.members[0]]):
            out["S1 noise-opened"] += pairs
        else:
            out[_kind(placed, [s for s in placed.groups if final(s.id) == main[fault]])] += pairs
    return out


def main(argv: list[str] | None = None) -> int:
    """Print each development set's split pairs by mechanism."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--without-burst-follow", action="store_true", help="stage 2 before session 31's rule")
    args = parser.parse_args(argv)
    grouping = GroupingConfig(burst_follow=not args.without_burst_follow)
    for data in development_sets(rca_sets.micross()):
        counts = mechanisms(data, grouping)
        total = sum(counts.values())
        print(f"\n## {data.name}: split pairs (piece x main parent) {total:,}")
        for kind, n in counts.most_common():
            print(f"  {n:>9,} {n / max(total, 1):6.1%}  {kind}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
