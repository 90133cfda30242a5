"""Where stage 2's pairwise errors come from, on development data only: which pairs are wrongly merged or split,
and by which mechanism, with counts (issue 17's error reading; it never builds a held-out seed).

Every wrong pair of alerts is charged to one mechanism:

* merged (a pair in one parent from two faults, a noise alert being a fault of its own):
  - `stage 1: noise before a fault's burst` / `after` / `inside`: both alerts in one stage-1 incident, a noise alert
    glued on by first_gap (before the fault's first alert of that key) or by the continuation gap (after, inside);
  - `stage 1: two faults`: one stage-1 incident holding alerts of two real faults;
  - `stage 2: noise joined by <relation>`: a noise incident joined a parent holding a fault, by the relation it
    joined with (`entity service`, `entity instance`, ..., `weak host`, `scope`, `merged`);
  - `stage 2: joined a noise-opened parent by <relation>`: a fault's incident joined a parent a noise alert opened;
  - `stage 2: two faults by <relation>`: incidents of two faults, charged to the one assigned later.
* split (a pair of one fault's alerts in two parents), charged to the smaller piece of the fault, by why that piece's
  stage-1 incident is not with the fault's main parent:
  - `stage 1 split the key`: the fault has alerts of the same key in another stage-1 incident (jitter, late alerts, a
    quiet gap inside the fault);
  - `in a noise-opened incident`: the piece sits in a stage-1 incident whose first alert is noise;
  - `joined another cause`: the piece joined (by the named relation) a parent whose most alerts are another fault's;
  - `opened apart`: it opened its own parent (nothing related to it within the gap).

    python benchmarks/rca_errors.py                  # rca-micross and the DEVELOPMENT and TUNING seeds' sets
    python benchmarks/rca_errors.py --examples 5     # and a few examples of each mechanism
    python benchmarks/rca_errors.py --stage1         # only what stage-1 incidents holding two true incidents cost

`--stage1` counts, per set, the wrong pairs that come from stage-1 incidents holding alerts of two true incidents
(a fault and a noise alert, or two faults), which no stage-2 rule can undo: the pairs of two true incidents inside
one such stage-1 incident (wrongly merged), and the pairs of a fault split apart where one side sits in a stage-1
incident that another true incident opened (its first alert is the other's). Beside them, F1 with stage 1 made
perfect in this one respect (each key split further by the true incident, nothing else changed): the most a
stage-1 window rule can gain.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import rca_sets  # noqa: E402
from accuracy_rca import development_sets, parents_of  # noqa: E402
from rca_sets import DataSet  # noqa: E402
from stage1_windows import sets as stage1_sets  # noqa: E402

from correlator.config import DEFAULT_CONFIG, CorrelationConfig  # noqa: E402
from correlator.engine import AlertLike  # noqa: E402
from correlator.models import IncidentEvent  # noqa: E402
from correlator.replay import ReplayIncident, ReplayParent, replay  # noqa: E402
from correlator.scoring import pairwise_score  # noqa: E402
from correlator.stage2 import DEFAULT_GROUPING, Assignment, GroupingConfig, ParentEvent, Relation  # noqa: E402

__all__ = ["Breakdown", "Mixing", "breakdown", "stage1_mixing"]

Note = Callable[[str, str], None]
"""Keeps an example of a mechanism: (mechanism, text)."""


@dataclass(slots=True)
class Breakdown:
    """Wrong pairs by mechanism, the score, and a few examples of each mechanism."""

    name: str
    f1: float
    precision: float
    recall: float
    merged: Counter[str] = field(default_factory=Counter)
    split: Counter[str] = field(default_factory=Counter)
    examples: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))


def _relation(a: Assignment) -> str:
    if a.relation is Relation.ENTITY:
        label = a.via.split(" ", 1)[0]
        return f"{'weak ' if label in ('host', 'node') else 'entity '}{label}"
    return str(a.relation.value)


def breakdown(data: DataSet, grouping: GroupingConfig = DEFAULT_GROUPING,
              correlation: CorrelationConfig = DEFAULT_CONFIG, examples: int = 0) -> Breakdown:
    """Run both stages on `data` and charge each wrong pair to its mechanism."""
    order: dict[str, int] = {}

    def hear(ev: IncidentEvent | ParentEvent | Assignment) -> None:
        if isinstance(ev, Assignment) and ev.relation is not Relation.MERGED:
            order[ev.child_id] = len(order)

    report = replay(data.alerts, correlation, grouping=grouping, listener=hear)
    assert report.parents is not None
    truth = data.truth
    when = {a.fingerprint: a.starts_at for a in data.alerts}
    predicted = {fp: p.id for p in report.parents for fp in p.members}
    score = pairwise_score(predicted, truth)
    out = Breakdown(data.name, score.f1, score.precision, score.recall)

    def note(kind: str, text: str) -> None:
        if len(out.examples[kind]) < examples:
            out.examples[kind].append(text)

    child_of = {fp: inc for inc in report.incidents for fp in inc.members}
    for parent in report.parents:
        _merged_pairs(parent.children, truth, when, order, out, note)
    _split_pairs(report.incidents, report.parents, truth, child_of, out, note)
    return out


def _noise(fault: str) -> bool:
    return fault.startswith("noise-")


def _merged_pairs(children: Sequence[ReplayIncident], truth: dict[str, str], when: dict[str, float],
                  order: dict[str, int], out: Breakdown, note: Note) -> None:
    cells = [Counter(truth[fp] for fp in c.members) for c in children]
    for c, cell in zip(children, cells):
        real = [when[fp] for fp in c.members if not _noise(truth[fp])]
        faults = list(cell)
        for i, f in enumerate(faults):
            for g in faults[i + 1:]:
                kind = "stage 1: two faults"
                if _noise(f) or _noise(g):  # the noise side says where it was glued on
                    t = min(when[fp] for fp in c.members if truth[fp] == (f if _noise(f) else g))
                    where = "inside" if not real or min(real) <= t <= max(real) else (
                        "before" if t < min(real) else "after")
                    kind = f"stage 1: noise {where} a fault's alerts"
                    note(kind, f"{c.key} {len(c.members)} alerts")
                out.merged[kind] += cell[f] * cell[g]
    noisy = [_noise(Counter(cell).most_common(1)[0][0]) for cell in cells]
    for i, (a, ca) in enumerate(zip(children, cells)):
        for j in range(i + 1, len(children)):
            b, cb = children[j], cells[j]
            pairs = sum(ca[f] * cb[g] for f in ca for g in cb if f != g)
            if not pairs:
                continue
            later = a if order.get(a.id, 0) > order.get(b.id, 0) else b
            kind = "two faults"
            if noisy[i] != noisy[j]:  # the noise side says how it got in, unless it opened the parent
                noise = a if noisy[i] else b
                assert noise.parent is not None
                later = noise if noise.parent.relation is not Relation.FIRST else later
                kind = "noise joined" if later is noise else "joined a noise-opened parent"
            elif noisy[i]:
                kind = "noise and noise"
            assert later.parent is not None
            kind = f"stage 2: {kind} by {_relation(later.parent)}"
            out.merged[kind] += pairs
            note(kind, f"{later.key}: {later.parent.explanation}")


def _split_pairs(incidents: Sequence[ReplayIncident], parents: Sequence[ReplayParent], truth: dict[str, str],
                 child_of: dict[str, ReplayIncident], out: Breakdown, note: Note) -> None:
    fault_parts: dict[str, Counter[str]] = defaultdict(Counter)  # fault -> parent -> alerts
    parent_main: dict[str, str] = {}
    for p in parents:
        cell = Counter(truth[fp] for fp in p.members)
        parent_main[p.id] = cell.most_common(1)[0][0]
        for f, n in cell.items():
            fault_parts[f][p.id] += n
    fault_keys: dict[tuple[str, str], set[str]] = defaultdict(set)  # (fault, key) -> stage-1 incident ids
    for inc in incidents:
        for fp in inc.members:
            fault_keys[(truth[fp], inc.key)].add(inc.id)
    for f, parts in fault_parts.items():
        if len(parts) < 2:
            continue
        ranked = [pid for pid, _ in parts.most_common()]
        for k, pid in enumerate(ranked[1:], start=1):
            pairs = parts[pid] * sum(parts[q] for q in ranked[:k])
            kids = {c.id: c for c in (child_of[fp] for fp in truth if truth[fp] == f)
                    if c.parent is not None and c.parent.parent_id == pid}
            kind = _split_kind(f, list(kids.values()), truth, fault_keys, parent_main)
            out.split[kind] += pairs
            note(kind, f"{f}: {', '.join(sorted(c.key for c in kids.values()))[:200]}")


def _split_kind(fault: str, kids: list[ReplayIncident], truth: dict[str, str],
                fault_keys: dict[tuple[str, str], set[str]], parent_main: dict[str, str]) -> str:
    if any(len(fault_keys[(fault, c.key)]) > 1 for c in kids):
        return "stage 1 split the key"
    if any(_noise(truth[c.members[0]]) for c in kids if c.members):
        return "in a noise-opened incident"
    a = kids[0].parent
    assert a is not None
    if parent_main[a.parent_id] != fault:
        other = "noise" if _noise(parent_main[a.parent_id]) else "a fault"
        return f"joined another cause ({other}) by {_relation(a)}"
    return "opened apart" if a.relation is Relation.FIRST else f"apart, joined by {_relation(a)}"


@dataclass(frozen=True, slots=True)
class Mixing:
    """What stage-1 incidents holding two true incidents cost stage 2's output (`--stage1`)."""

    name: str
    f1: float
    wrong: int
    """Every wrong pair of stage 2's output, merged and split."""
    mixed: int
    """Stage-1 incidents holding alerts of two or more true incidents."""
    merged: int
    """Pairs of two true incidents inside one stage-1 incident."""
    split: int
    """Pairs of one fault split apart, one side in a stage-1 incident another true incident opened."""
    oracle_f1: float
    """F1 when each stage-1 key is split further by the true incident (nothing else changed)."""


class _Keyed:
    """An alert whose key names its true incident too: stage 1 then never mixes two (stage 2 reads no symptom)."""

    __slots__ = ("fingerprint", "key", "status", "severity", "starts_at", "ends_at", "labels")

    def __init__(self, a: AlertLike, fault: str) -> None:
        self.fingerprint, self.key, self.status, self.severity = a.fingerprint, f"{a.key}~{fault}", a.status, a.severity
        self.starts_at, self.ends_at, self.labels = a.starts_at, a.ends_at, a.labels


def _pairs_across(cell: Counter[str]) -> int:
    """Pairs of items that fall in two different entries of `cell` (item counts by entry)."""
    return (sum(cell.values()) ** 2 - sum(n * n for n in cell.values())) // 2


def _split_pairs_of(predicted: dict[str, str], truth: dict[str, str], items: Iterable[str]) -> int:
    """Pairs of `items` of one true group in two predicted ones (with the roles swapped: wrongly merged pairs)."""
    by_fault: dict[str, Counter[str]] = defaultdict(Counter)
    for fp in items:
        by_fault[truth[fp]][predicted[fp]] += 1
    return sum(_pairs_across(c) for c in by_fault.values())


def stage1_mixing(data: DataSet, grouping: GroupingConfig = DEFAULT_GROUPING,
                  correlation: CorrelationConfig = DEFAULT_CONFIG) -> Mixing:
    """Count the wrong pairs stage-1 incidents of two true incidents cause, and F1 without them."""
    truth = data.truth
    report = replay(data.alerts, correlation, grouping=grouping)
    predicted = parents_of(report)
    score = pairwise_score(predicted, truth)
    when = {a.fingerprint: a.starts_at for a in data.alerts}
    mixed = merged = 0
    placed: list[str] = []
    for inc in report.incidents:
        cell = Counter(truth[fp] for fp in inc.members)
        if len(cell) > 1:
            mixed += 1
            merged += _pairs_across(cell)
        owner = truth[min(inc.members, key=lambda fp: when[fp])] if inc.members else ""
        placed.extend(fp for fp in inc.members if truth[fp] == owner)
    apart = _split_pairs_of(predicted, truth, truth)
    split = apart - _split_pairs_of(predicted, truth, placed)
    wrong = apart + _split_pairs_of(truth, predicted, truth)
    oracle = replay([_Keyed(a, truth[a.fingerprint]) for a in data.alerts], correlation, grouping=grouping)
    oracle_f1 = pairwise_score(parents_of(oracle), truth).f1
    return Mixing(data.name, score.f1, wrong, mixed, merged, split, oracle_f1)


def main(argv: list[str] | None = None) -> int:
    """Print each development set's score and its wrong pairs by mechanism."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=0, help="examples to print per mechanism")
    parser.add_argument("--stage1", action="store_true", help="only what stage-1 incidents of two true incidents cost")
    parser.add_argument("--without-company", action="store_true", help="stage 2 as before issue 17's sixth round")
    args = parser.parse_args(argv)
    grouping = GroupingConfig(company=not args.without_company)
    if args.stage1:
        print("| set | F1 | wrong pairs | mixed stage-1 incidents | merged inside them | split by them | share | "
              "F1, stage 1 split by truth |\n|---|---:|---:|---:|---:|---:|---:|---:|")
        for data in stage1_sets():
            m = stage1_mixing(data, grouping)
            print(f"| {m.name} | {m.f1:.3f} | {m.wrong:,} | {m.mixed} | {m.merged:,} | {m.split:,} | "
                  f"{(m.merged + m.split) / max(m.wrong, 1):.1%} | {m.oracle_f1:.3f} |")
        return 0
    for data in development_sets(rca_sets.micross()):
        b = breakdown(data, grouping, examples=args.examples)
        total_m, total_s = sum(b.merged.values()), sum(b.split.values())
        print(f"\n## {b.name}: F1 {b.f1:.3f} (precision {b.precision:.3f}, recall {b.recall:.3f})")
        print(f"wrongly merged pairs {total_m:,}, wrongly split pairs {total_s:,}")
        for title, counts in (("merged", b.merged), ("split", b.split)):
            for kind, n in counts.most_common():
                print(f"  {title:6} {n:>9,} {n / max(total_m + total_s, 1):6.1%}  {kind}")
                for ex in b.examples.get(kind, []):
                    print(f"           e.g. {ex}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
