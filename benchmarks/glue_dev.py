"""Issue 17, session 39 (glue26): stage-1 incidents that hold two true faults of one key, read per development set.

For every stage-1 incident (defaults, or `--stage1 field=value`) holding alerts of two or more true faults, each
fault's onset inside it (its first alert there, when that fault has at least `--least` alerts in the incident, so
that a lone noise alert glued on is not counted as a fault) is printed with what the engine knows when that alert
arrives: the pause since the incident's previous alert, the incident's count and mean interval so far, whether the
old fault's alerts go on after the onset (two faults at once, not a recurrence), how far apart the two faults start,
the new fault's own mean interval over its first alerts (known only later), and whether the onset alert names an
instance, host or callee no alert of the incident named before (and none of its last `--recent` alerts).
The same features of every other step inside a stage-1 incident (the same fault going on) after a pause of at least
`--pause` seconds are counted beside, so that a rule read off the onsets can be weighed against the pauses it would
end inside a fault. Development data only (TUNING, DEVELOPMENT, DEVELOPMENT_TOPOLOGY, rca-micross); it never builds a
held-out or seen seed.

    python benchmarks/glue_dev.py                      # summary per set
    python benchmarks/glue_dev.py --list               # every onset
"""

from __future__ import annotations

import argparse
import pickle
import statistics
import sys
from collections import Counter, defaultdict
from dataclasses import dataclass, replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import rca_sets  # noqa: E402
from accuracy_rca import development_sets  # noqa: E402
from rca_sets import DataSet  # noqa: E402
from rule_dev import settings  # noqa: E402

from correlator.config import CorrelationConfig  # noqa: E402
from correlator.replay import replay  # noqa: E402

NAME_LABELS = ("instance", "host", "callee")
"""The labels whose values say where an alert fired (a trace error's callee is the failing instance)."""


@dataclass(frozen=True, slots=True)
class Step:
    """One alert inside a stage-1 incident, with what the engine knew when it arrived."""

    set: str
    key: str
    onset: bool
    """True: the first alert of a true fault other than those already in the incident."""
    pause: float
    n: int
    mean: float
    old_goes_on: bool
    start_apart: float
    new_mean: float
    new_name: bool
    """It names a value (NAME_LABELS) no earlier alert of the incident named."""
    new_recent: bool
    """It names a value none of the incident's last `recent` alerts named."""
    weight: int
    """Onsets: the new fault's alerts in the incident times the rest's (the pairs glued); other steps: 0."""
    recent_mean: float
    """The mean interval of the incident's last `recent` alerts before it (its rate just before the pause)."""
    same: bool
    """The fault of an alert before it in the incident going on (a split here cuts one fault in two)."""


def names_of(labels: dict[str, str]) -> set[str]:
    """The NAME_LABELS values of an alert, prefixed by their label."""
    return {f"{k}={labels[k]}" for k in NAME_LABELS if k in labels}


def steps_of(data: DataSet, config: CorrelationConfig, least: int, recent: int) -> list[Step]:
    """Every step after the first inside every stage-1 incident of `data` under `config`."""
    report = replay(data.alerts, config)
    by_fp = {a.fingerprint: a for a in data.alerts}
    out: list[Step] = []
    for inc in report.incidents:
        members = sorted((by_fp[fp] for fp in inc.members), key=lambda a: (a.starts_at, a.fingerprint))
        faults = Counter(data.truth[a.fingerprint] for a in members)
        first_of: dict[str, float] = {}
        for a in members:
            first_of.setdefault(data.truth[a.fingerprint], a.starts_at)
        seen: set[str] = set()
        named: set[str] = set()
        window: list[set[str]] = []
        for i, a in enumerate(members):
            fault = data.truth[a.fingerprint]
            mine = names_of(a.labels)
            if i:
                prev = members[:i]
                t0, tl = prev[0].starts_at, prev[-1].starts_at
                mean = (tl - t0) / (i - 1) if i > 1 else 0.0
                onset = fault not in seen and faults[fault] >= least
                later = [b for b in members[i:] if data.truth[b.fingerprint] == fault][:6]
                new_mean = (later[-1].starts_at - later[0].starts_at) / (len(later) - 1) if len(later) > 1 else 0.0
                old = {data.truth[b.fingerprint] for b in prev}
                goes_on = any(data.truth[b.fingerprint] in old for b in members[i + 1:])
                apart = a.starts_at - min(first_of[f] for f in old)
                recent_names = set().union(*window[-recent:]) if window else set()
                tail = prev[-(recent + 1):]
                recent_mean = (tail[-1].starts_at - tail[0].starts_at) / (len(tail) - 1) if len(tail) > 1 else 0.0
                out.append(Step(data.name, inc.key, onset, a.starts_at - tl, i, mean, goes_on, apart, new_mean,
                                bool(mine - named), bool(mine - recent_names),
                                faults[fault] * (len(members) - faults[fault]) if onset else 0, recent_mean, fault in seen))
            seen.add(fault)
            named |= mine
            window.append(mine)
    return out


def sets() -> list[DataSet]:
    """rca-micross, the TUNING and DEVELOPMENT sets (storms included) and the DEVELOPMENT_TOPOLOGY cascades."""
    out = development_sets(rca_sets.micross())
    out += [replace(rca_sets.cascades(seed=s), name=f"generated cascades, seed {s} (development topology)")
            for s in rca_sets.DEVELOPMENT_TOPOLOGY["cascades"]]
    return out


def main(argv: list[str] | None = None) -> int:
    """Print the onsets glued into stage-1 incidents per set, and the pauses inside one fault beside them."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stage1", nargs="*", default=[], help="CorrelationConfig field=value pairs")
    parser.add_argument("--least", type=int, default=2, help="alerts a fault needs in the incident to count")
    parser.add_argument("--recent", type=int, default=5, help="the incident's last alerts the names are held to")
    parser.add_argument("--pause", type=float, default=30.0, help="pauses inside a fault counted from this long")
    parser.add_argument("--list", action="store_true", help="print every onset")
    parser.add_argument("--only", default="", help="only sets whose name holds this text")
    parser.add_argument("--dump", type=Path, help="pickle every set's steps to this file (for a scratch reader)")
    args = parser.parse_args(argv)
    config = replace(CorrelationConfig(), **settings(args.stage1, CorrelationConfig))
    print("| set | onsets glued | pairs glued (k) | recurrences (old fault stopped) | pause median (min-max) s | "
          "onset names a new value / of recurrences | pauses >= P inside a fault | of them naming a new value |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    everything: dict[str, list[Step]] = defaultdict(list)
    for data in sets():
        if args.only not in data.name:
            continue
        steps = steps_of(data, config, args.least, args.recent)
        onsets = [s for s in steps if s.onset]
        inside = [s for s in steps if s.same and s.pause >= args.pause]
        recur = [s for s in onsets if not s.old_goes_on]
        pauses = sorted(s.pause for s in onsets)
        span = f"{statistics.median(pauses):.0f} ({pauses[0]:.0f}-{pauses[-1]:.0f})" if pauses else "-"
        print(f"| {data.name} | {len(onsets)} | {sum(s.weight for s in onsets) / 1000:.1f} | {len(recur)} | {span} | "
              f"{sum(s.new_name for s in onsets)} / {sum(s.new_name for s in recur)} | {len(inside)} | "
              f"{sum(s.new_name for s in inside)} |", flush=True)
        everything[data.name] = steps
        if args.list:
            for s in sorted(onsets, key=lambda s: -s.weight):
                print(f"    {s.key} w={s.weight} pause={s.pause:.0f}s n={s.n} mean={s.mean:.1f}s "
                      f"new_mean={s.new_mean:.1f}s apart={s.start_apart:.0f}s old_goes_on={s.old_goes_on} "
                      f"new_name={s.new_name} new_recent={s.new_recent}")
    if args.dump is not None:
        args.dump.write_bytes(pickle.dumps(dict(everything)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
