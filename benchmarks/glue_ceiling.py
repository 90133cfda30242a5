"""Issue 17, session 39 (glue26): the most a stage-1 rule that splits one key's incident at a quiet gap could gain.

Two oracles beside the defaults, stage 2 without the topology file and with it, on the development cascades (and
rca-micross and the noise sets with `--all`):

* `time oracle`: stage 1 ends the key's incident where the alert's *segment* changes (the key stays the same, so
  stage 2 sees a same-key successor exactly as a real stage-1 split would give it): on each key, the true faults in order of their
  first alert of that key, a fault starting after every earlier fault's last alert of the key has passed opens a
  new segment, one starting while an earlier one is still alerting joins its segment. Stage 1 then never glues a
  fault that followed a quiet spell of the key (a recurrence), and still glues two faults alerting at once. That is
  the ceiling of any rule that only ends an incident at a pause, however clever its reading of the pause.
* `truth oracle`: the same with the true fault for the segment: stage 1 never mixes (`rca_errors.stage1_mixing`'s
  oracle suffixes the key instead, so stage 2 there sees other keys).

Development data only (TUNING, DEVELOPMENT, DEVELOPMENT_TOPOLOGY, rca-micross); never a held-out or seen seed.

    python benchmarks/glue_ceiling.py            # the cascades (about 5 min quiet)
    python benchmarks/glue_ceiling.py --all      # and rca-micross and the noise sets
    python benchmarks/glue_ceiling.py --noise    # the noise sets, the time oracle leaving strays to stage 1
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter, defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from accuracy_rca import f1_pair  # noqa: E402
from glue_dev import sets  # noqa: E402
from rca_sets import DataSet  # noqa: E402

import correlator.replay  # noqa: E402
from correlator.engine import AlertLike, Correlator  # noqa: E402
from correlator.state import KeyState  # noqa: E402
from correlator.stage2 import GroupingConfig  # noqa: E402

SEGMENT: dict[str, str] = {}
"""Alert fingerprint -> its segment, for the replay in progress (`Oracle`)."""


class Oracle(Correlator):
    """Stage 1 that ends the key's absorbing incident where the next alert's `SEGMENT` differs from its first's."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        self._segment_of: dict[str, str | None] = {}
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]

    def _apply(self, st: KeyState, t: float, resolving: bool, fp: str, a: AlertLike, late: bool) -> None:
        seg = SEGMENT.get(fp)
        if st.incidents and not resolving and seg is not None:
            cur = st.incidents[-1]
            if self._segment_of.get(cur.id, seg) != seg:
                cur.accepting = False
        super()._apply(st, t, resolving, fp, a, late)
        if st.incidents and seg is not None:
            self._segment_of.setdefault(st.incidents[-1].id, seg)


def segments(data: DataSet, strays: bool = True) -> dict[str, str]:
    """Alert fingerprint -> its fault's segment on its key (see the module docstring). `strays=False`: a true incident
    of one alert (a noise set's stray) has no segment, so it never ends an incident and joins as stage 1 decides."""
    sizes = Counter(data.truth.values())
    spans: dict[str, dict[str, list[float]]] = defaultdict(dict)
    for a in data.alerts:
        if not strays and sizes[data.truth[a.fingerprint]] < 2:
            continue
        span = spans[a.key].setdefault(data.truth[a.fingerprint], [a.starts_at, a.starts_at])
        span[0], span[1] = min(span[0], a.starts_at), max(span[1], a.starts_at)
    segment: dict[tuple[str, str], str] = {}
    for key, faults in spans.items():
        reach, current = float("-inf"), ""
        for fault, (first, last) in sorted(faults.items(), key=lambda kv: kv[1][0]):
            if first > reach:
                current = fault
            segment[(key, fault)] = current
            reach = max(reach, last)
    return {a.fingerprint: segment[(a.key, data.truth[a.fingerprint])] for a in data.alerts
            if (a.key, data.truth[a.fingerprint]) in segment}


def scored(data: DataSet, by: dict[str, str] | None, grouping: GroupingConfig) -> tuple[float, float | None]:
    """F1 without the file and with it, stage 1 split where `by` changes on a key (None: the defaults)."""
    SEGMENT.clear()
    if by is None:
        return f1_pair(data, grouping)
    SEGMENT.update(by)
    correlator.replay.Correlator = Oracle  # type: ignore[attr-defined]  # the replay builds its engine by this name
    try:
        return f1_pair(data, grouping)
    finally:
        correlator.replay.Correlator = Correlator  # type: ignore[attr-defined]


def main(argv: list[str] | None = None) -> int:
    """Print F1 at the defaults, with the time oracle and with the truth oracle, per set."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--all", action="store_true", help="rca-micross and the noise sets too")
    parser.add_argument("--noise", action="store_true", help="only the noise sets, and the time oracle without strays")
    args = parser.parse_args(argv)
    grouping = GroupingConfig()
    if args.noise:
        print("| set | time oracle, strays not splitting (a fault's quiet spells only) |\n|---|---:|")
    else:
        print("| set | defaults | time oracle (split at every quiet spell of the key) | truth oracle |")
        print("|---|---:|---:|---:|")
    for data in sets():
        if "storms" in data.name or not (args.all or "cascades" in data.name or args.noise):
            continue
        if args.noise and "noise" not in data.name:
            continue
        cells = []
        for by in [segments(data, strays=False)] if args.noise else (None, segments(data), data.truth):
            without, with_file = scored(data, by, grouping)
            cells.append(f"{without:.4f}" + ("" if with_file is None else f" / {with_file:.4f}"))
        print(f"| {data.name} | {' | '.join(cells)} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
