"""Issue 17, session 38 (casc24): what a stage-2 rule costs in process, per alert, beside main's defaults in one run.

Stage 1 runs once per set as `aiops replay` drives it (`correlator.replay`'s slices); its events and the idle
advances between slices are recorded, then a fresh `Grouper` (labels only, as the stream runs without a file) is
driven through that same sequence for each setting, process CPU time, settings interleaved in rotating order,
`--rounds` rounds, medians. So the figure is stage 2's grouping alone (no broker, no Faust, no encoding), the part a
rule can change. Also printed, from one more pass per setting with a timer around `_climb`: how many children it was
asked about, how many groups its scans read (it reads every group the store holds, resolved ones kept for retention_s
included, per trace error related to nothing: casc22/casc23) and the CPU spent in it; and the same at main's
settings with a longer retention_s, so more groups held: how the scan grows with the store.

Settings: `main` (defaults), `main_scan` (defaults, `_climb` scanning every group held as before casc24's index:
`ScanGrouper`), `climb_off` (`climb_s` 0), `labels_off` (`tenants_apart_labels` False,
`machine_follow_filed` True: before casc23's second grid), `both_off` (the two together: grouping as before casc23),
`late120` (`late_symptom_s` 120). Never builds a held-out or seen seed.

    python benchmarks/stage2_rule_cost.py                      # cascades 6427, rca-micross, noise everywhere 6359
    python benchmarks/stage2_rule_cost.py --rounds 7 --sets cascades
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import rca_sets  # noqa: E402
from rca_sets import DataSet  # noqa: E402

from correlator.config import DEFAULT_CONFIG  # noqa: E402
from correlator.engine import Correlator  # noqa: E402
from correlator.models import IncidentEvent  # noqa: E402
from correlator.replay import time_slices  # noqa: E402
from correlator.stage2 import DEFAULT_GROUPING, GroupingConfig  # noqa: E402
from correlator.keys import split_key  # noqa: E402
from correlator.stage2.engine import Grouper, _Candidate  # noqa: E402
from correlator.stage2.relations import ChildView  # noqa: E402
from correlator.stage2.state import GroupState  # noqa: E402



class ScanGrouper(Grouper):
    """`_climb` as casc22 built it (to 790bb10): a scan of every group the store holds, resolved ones kept for
    retention_s included, per child it is asked about; kept here so the index that replaced it can be measured
    beside it (the same parents: `tests/test_stage2_climb.py`)."""

    def _climb_groups(self, scope: str) -> Iterator[GroupState]:
        return (g for _, g in self.store.items())


SETTINGS: dict[str, tuple[GroupingConfig, type[Grouper]]] = {
    "main": (DEFAULT_GROUPING, Grouper),
    "main_scan": (DEFAULT_GROUPING, ScanGrouper),
    "climb_off": (replace(DEFAULT_GROUPING, climb_s=0.0), Grouper),
    "labels_off": (replace(DEFAULT_GROUPING, tenants_apart_labels=False, machine_follow_filed=True), Grouper),
    "both_off": (replace(DEFAULT_GROUPING, climb_s=0.0, tenants_apart_labels=False, machine_follow_filed=True),
                 Grouper),
    "late120": (replace(DEFAULT_GROUPING, late_symptom_s=120.0), Grouper),
}

Step = tuple[float, list[IncidentEvent]]
"""One slice: the idle advance stage 2 gets before it (event time), then the stage-1 events the slice caused."""


def stage1_steps(data: DataSet) -> list[Step]:
    """Stage 1 over the set as `replay` drives it; what stage 2 is handed, slice by slice (the last: `finish`)."""
    engine = Correlator(DEFAULT_CONFIG)
    steps: list[Step] = []
    for batch in time_slices(data.alerts):
        t = batch[0].starts_at
        events = list(engine.advance(t))
        if steps:
            steps[-1][1].extend(events)
        steps.append((t - DEFAULT_CONFIG.allowed_lateness_s, list(engine.ingest(batch))))
    steps.append((float("nan"), list(engine.finish())))
    return steps


def drive(steps: list[Step], config: GroupingConfig, kind: type[Grouper] = Grouper) -> int:
    """Stage 2 through the recorded steps; the children it assigned."""
    grouper = kind(config)
    for advance, events in steps[:-1]:
        grouper.advance(advance)
        grouper.ingest(events)
    grouper.ingest(steps[-1][1])
    grouper.finish()
    return grouper.counters.children


def climb_scans(steps: list[Step], config: GroupingConfig, kind: type[Grouper] = Grouper) -> tuple[int, int, float]:
    """Children `_climb` was asked about, groups its scans could read (every group the store holds for the old scan,
    the scope's accepting ones for the index), and the process CPU seconds spent in it (one pass with a wrapper around
    it: the timer's own cost, about 1 us a call, is inside the figure)."""
    calls = reads = 0
    spent = 0.0
    climb = kind._climb

    def timed(self: Grouper, ev: IncidentEvent, view: ChildView) -> _Candidate | None:
        nonlocal calls, reads, spent
        calls += 1
        reads += len(self.store) if kind is ScanGrouper else len(self._accepting.get(split_key(ev.key)[0], ()))
        start = time.process_time()
        try:
            return climb(self, ev, view)
        finally:
            spent += time.process_time() - start
    kind._climb = timed  # type: ignore[method-assign]
    try:
        drive(steps, config, kind)
    finally:
        kind._climb = climb  # type: ignore[method-assign]
    return calls, reads, spent


def main(argv: list[str] | None = None) -> int:
    """Per set: alerts, stage-1 events, children; per setting the median CPU per alert and its ratio to main's."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--sets", nargs="*", default=["cascades", "micross", "noise"])
    parser.add_argument("--retention", nargs="*", type=float, default=[3600.0, 36000.0],
                        help="GroupingConfig.retention_s values for the scan's growth with the groups held")
    args = parser.parse_args(argv)
    base = rca_sets.micross()
    build = {"cascades": lambda: rca_sets.cascades(seed=rca_sets.DEVELOPMENT["cascades"][-1]), "micross": lambda: base,
             "noise": lambda: rca_sets.noisy(base, seed=rca_sets.DEVELOPMENT["noise"][-1], during_faults=True)}
    for name in args.sets:
        data = build[name]()
        steps = stage1_steps(data)
        events = sum(len(e) for _, e in steps)
        cpu: dict[str, list[float]] = {k: [] for k in SETTINGS}
        labels = list(SETTINGS)
        for r in range(args.rounds):
            for label in labels[r % len(labels):] + labels[:r % len(labels)]:
                start = time.process_time()
                drive(steps, *SETTINGS[label])
                cpu[label].append(time.process_time() - start)
        children = drive(steps, DEFAULT_GROUPING)
        print(f"{data.name}: {len(data.alerts)} alerts, {events} stage-1 events, {children} children; stage 2's "
              f"CPU per alert, median of {args.rounds} (min-max), ratio to main's median:")
        main_median = statistics.median(cpu["main"])
        for label in labels:
            med = statistics.median(cpu[label])
            calls, reads, spent = climb_scans(steps, *SETTINGS[label])
            print(f"  {label:10} {med / len(data.alerts) * 1e6:7.1f} us ({min(cpu[label]) / len(data.alerts) * 1e6:.1f}"
                  f"-{max(cpu[label]) / len(data.alerts) * 1e6:.1f}) x{med / main_median:.3f}; _climb asked "
                  f"{calls}, groups read {reads}, {spent / len(data.alerts) * 1e6:.2f} us per alert in it", flush=True)
        for retention, kind in ((r, k) for r in args.retention for k in (Grouper, ScanGrouper)):
            calls, reads, spent = climb_scans(steps, replace(DEFAULT_GROUPING, retention_s=retention), kind)
            print(f"  main{'_scan' if kind is ScanGrouper else ''}, retention_s {retention:g}: _climb asked {calls}, groups read {reads} "
                  f"({reads / max(calls, 1):.0f} a call), {spent / max(calls, 1) * 1e6:.1f} us a call, "
                  f"{spent / len(data.alerts) * 1e6:.2f} us per alert", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
