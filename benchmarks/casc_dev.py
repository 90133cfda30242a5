"""Issue 17, session 33 (casc19): stage 2 variants on development data, F1 without and with the topology file.

Sets: rca-micross, the DEVELOPMENT and TUNING noise and cascades, DEVELOPMENT_TOPOLOGY and the checks MicroSS x2 and
two clusters. Never builds a held-out seed; prints the verdict of the decision rule in benchmarks/RESULTS.md (casc19).

    python benchmarks/casc_dev.py                     # main, (f2) machine_follow, (h3) tenants_apart
    python benchmarks/casc_dev.py --only main --cascades-only
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import rca_sets  # noqa: E402
from accuracy_rca import development_sets, overlaid, variant_table  # noqa: E402
from rca_sets import DataSet  # noqa: E402

from correlator.stage2 import DEFAULT_GROUPING, GroupingConfig  # noqa: E402

VARIANTS: dict[str, GroupingConfig] = {"main": DEFAULT_GROUPING,
                                       "(f2) machine_follow": GroupingConfig(machine_follow=True),
                                       "(h3) tenants_apart, unless the machine alerts": GroupingConfig(tenants_apart=True)}


def sets(cascades_only: bool) -> list[DataSet]:
    """rca-micross, the development and tuning sets, DEVELOPMENT_TOPOLOGY, and the checks."""
    base = rca_sets.micross()
    out = development_sets(base)
    out += [rca_sets.cascades(seed=s) for s in rca_sets.DEVELOPMENT_TOPOLOGY["cascades"]]
    out += [overlaid(base), rca_sets.two_clusters(base)]
    if cascades_only:
        out = [d for d in out if "cascades" in d.name or d.name == "MicroSS x2"]
    return out


def main(argv: list[str] | None = None) -> int:
    """One line per set: F1 without the file / with it per variant; then the verdict's figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", default=None, help="variants to run")
    parser.add_argument("--cascades-only", action="store_true")
    args = parser.parse_args(argv)
    variants = {k: v for k, v in VARIANTS.items() if args.only is None or k in args.only}
    names, f1 = variant_table(sets(args.cascades_only), variants)
    cascades = [n for n in names if "cascades" in n]
    print()
    for label in variants:
        mean = sum(v for n in cascades for v in f1[(n, label)] if v is not None) / max(2 * len(cascades), 1)
        falls = [(n, round(b - a, 4)) for n in names for a, b in zip(f1[(n, label)], f1[(n, "main")])
                 if a is not None and b is not None and b - a > 0.0005] if "main" in variants else []
        worse = [n for n in names if (lambda w, f: f is not None and f < w)(*f1[(n, label)])]
        print(f"{label}: cascade mean {mean:.4f}; falls > 0.0005 against main: {falls or 'none'}; "
              f"with < without: {worse or 'none'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
