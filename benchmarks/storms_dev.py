"""Issue 17, twelfth round (session 36, storm22): stage-1 variants aimed at the storms family, on development data.

Sets: those of `casc_dev.sets` (rca-micross, the DEVELOPMENT and TUNING noise, cascades and storms, DEVELOPMENT_TOPOLOGY
and the checks MicroSS x2 and two clusters). Never builds a held-out seed, nor storms seed 7 (SEEN). Prints F1 over
parents without / with the file per variant, then each variant's verdict against main by the twelfth round's rule
(`rca_sets.HELD_OUT`) with storms the target family (`rule_dev.verdict`, target "storms").

    python benchmarks/storms_dev.py                  # main and every variant below (the decision run)
    python benchmarks/storms_dev.py --only main "(f) rejoin flaps"
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from accuracy_rca import Variant, variant_table  # noqa: E402
from casc_dev import sets  # noqa: E402
from rule_dev import verdict  # noqa: E402

from correlator.config import CorrelationConfig  # noqa: E402
from correlator.stage2 import DEFAULT_GROUPING  # noqa: E402

VARIANTS: dict[str, Variant] = {
    "main": (DEFAULT_GROUPING, CorrelationConfig()),
    "(f) rejoin flaps": (DEFAULT_GROUPING, CorrelationConfig(rejoin_flaps=True)),
    "(d0) dense gap off": (DEFAULT_GROUPING, CorrelationConfig(dense_alerts=0)),
    "(f+d0) rejoin flaps, dense gap off": (DEFAULT_GROUPING, CorrelationConfig(rejoin_flaps=True, dense_alerts=0)),
}
"""storm22's grid, declared in benchmarks/RESULTS.md before it was measured: `CorrelationConfig.rejoin_flaps` and the
eleventh round's dense-storm gap off (`dense_alerts` 0), alone and together."""
ORDER = ("(f) rejoin flaps", "(d0) dense gap off", "(f+d0) rejoin flaps, dense gap off")
"""The tie-break: within 0.0005 of the best storms mean, the earlier ships (the fewest changes to what ships)."""
CHECKS = ("MicroSS x2", "two clusters at once")


def main(argv: list[str] | None = None) -> int:
    """One line per set: F1 without the file / with it per variant; then each variant's verdict and the choice."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", default=None, help="variants to run (main always)")
    args = parser.parse_args(argv)
    chosen = VARIANTS if args.only is None else {k: v for k, v in VARIANTS.items() if k == "main" or k in args.only}
    data = sets(False)
    names, f1 = variant_table(data, chosen)
    dev = [n for n in names if "(" in n]  # rca-micross (tuning set) and the DEVELOPMENT and TUNING seeds
    checks = [n for n in names if n in CHECKS]
    extra = [n for n in names if n not in dev and n not in checks]  # DEVELOPMENT_TOPOLOGY
    storms = [n for n in dev if "generated storms," in n]
    shipping: dict[str, float] = {}
    print()
    for label in chosen:
        if label == "main":
            continue
        rows = {n: (f1[(n, "main")], f1[(n, label)]) for n in names}
        ships, lines = verdict(rows, dev, extra, checks, "storms")
        mean = sum(f1[(n, label)][0] for n in storms) / len(storms)
        print(f"{label}: storms mean {mean:.4f}; verdict (twelfth round, target storms): "
              f"{'ships on' if ships else 'fails'}")
        print("\n".join("  " + line for line in lines))
        if ships:
            shipping[label] = mean
    if shipping:
        best = max(shipping.values())
        pick = next(k for k in ORDER if k in shipping and shipping[k] >= best - 0.0005)
        print(f"\nchosen: {pick}")
    else:
        print("\nchosen: none (main stays)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
