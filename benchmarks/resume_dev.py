"""Issue 17, session 32 (noise18): stage 2 with and without resumption on development data and the checks.

Resumption (`GroupingConfig.resume_below`): a group's only child, of fewer than resume_below alerts, that resumes
after a lull longer than gap_s carries its group on (its latest onset moves to the resumption and it accepts again).
This prints F1 over parents with the rule off (`resume_below=0`, the rule before) and on, without the topology file
and with it, in one run, on the sets of `accuracy_rca.py --sets dev` (rca-micross, the DEVELOPMENT and TUNING noise
and cascade seeds), the DEVELOPMENT_TOPOLOGY cascades and the checks: MicroSS x2, two clusters at once, generated
storms; then the mean over the `--sets dev` sets and the decision rule's verdict (benchmarks/RESULTS.md, noise18,
committed before the rule was built). It never builds a held-out seed.

    python benchmarks/resume_dev.py                    # about 5 min on a quiet machine
    python benchmarks/resume_dev.py --resume-below 3   # the decision rule's fallback
    python benchmarks/resume_dev.py --rule lone_apart  # the second rule: off / on, resumption on in both

`--rule lone_apart` compares `GroupingConfig.lone_apart` off and on instead (a lone one-alert group folds into a
bridge's group only within burst_s), resumption on in both, against the second decision rule (noise18).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rule_dev import compare  # noqa: E402

from correlator.stage2 import GroupingConfig  # noqa: E402

def main(argv: list[str] | None = None) -> int:
    """One line per set (F1 off / on, without the file and with it), then the verdict."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--resume-below", type=int, default=GroupingConfig().resume_below)
    parser.add_argument("--rule", choices=("resume_below", "lone_apart"), default="resume_below")
    args = parser.parse_args(argv)
    if args.rule == "lone_apart":
        configs = (GroupingConfig(lone_apart=False), GroupingConfig(lone_apart=True))
        print("lone_apart off / on (resume_below at its default)")
    else:
        configs = (GroupingConfig(resume_below=0, lone_apart=False),
                   GroupingConfig(resume_below=args.resume_below, lone_apart=False))
        print(f"resume_below 0 / {args.resume_below} (lone_apart off)")
    compare(*configs, baseline=False)  # the verdict printed is now the tenth round's (rule_dev.verdict)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
