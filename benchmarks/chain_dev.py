"""Issue 17, session 32 (casc18): stage 2 with and without call chains on development data and the checks.

Two rules, each behind its own `GroupingConfig` field: `call_chains` (a failed call into a service the cause holds a
failed call out of, by instance naming) and `path_chains` (with the topology file, a trace error's one-edge path in
the call direction is admitted as a caller name is). This prints F1 over parents without the topology file and with
it, for main's behaviour (both off) and the three variants, in one run, on rca-micross, the DEVELOPMENT, TUNING and
DEVELOPMENT_TOPOLOGY sets and the checks MicroSS x2, two clusters and generated storms, then the decision rule's
verdict (benchmarks/RESULTS.md, casc18, committed before the rules were measured). It never builds a held-out seed.

    python benchmarks/chain_dev.py                  # about 5 min on a quiet machine
    python benchmarks/chain_dev.py --trace-follow   # main, (b) and (e): trace_follow with path_chains

A follow-up (d) (chain children within burst_s of the cause's onset joining as names do) was measured at commit
23d9437 with `--follow-up` there and reverted (benchmarks/RESULTS.md, casc18).
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import rca_sets  # noqa: E402
from accuracy_rca import development_sets, generated, overlaid, variant_table  # noqa: E402
from rca_sets import DataSet  # noqa: E402

from correlator.stage2 import GroupingConfig  # noqa: E402

VARIANTS = {"main": GroupingConfig(call_chains=False, path_chains=False, trace_follow=False),
            "(a) call_chains": GroupingConfig(call_chains=True, path_chains=False),
            "(b) path_chains": GroupingConfig(call_chains=False, path_chains=True),
            "(c) both": GroupingConfig(call_chains=True, path_chains=True)}
TRACE = {"main": VARIANTS["main"], "(b) path_chains": VARIANTS["(b) path_chains"],
         "(e) trace_follow + path_chains": GroupingConfig(call_chains=False, path_chains=True, trace_follow=True)}


def sets() -> list[DataSet]:
    """rca-micross, the development and tuning noise and cascades, DEVELOPMENT_TOPOLOGY, and the checks."""
    base = rca_sets.micross()
    out = development_sets(base)
    out += [rca_sets.cascades(seed=s) for s in rca_sets.DEVELOPMENT_TOPOLOGY["cascades"]]
    return [*out, overlaid(base), rca_sets.two_clusters(base), generated(100_000)]


def main(argv: list[str] | None = None) -> int:
    """One line per set and variant: F1 without the file, with it; then the verdict."""
    variants = TRACE if "--trace-follow" in (sys.argv[1:] if argv is None else argv) else VARIANTS
    names, f1 = variant_table(sets(), variants)
    cascades = [n for n in names if n.startswith("generated cascades")]
    print()
    for label in variants:
        mean = sum(v for n in cascades for v in f1[(n, label)] if v is not None) / (2 * len(cascades))
        falls = [(n, round(b - a, 4)) for n in names for a, b in zip(f1[(n, label)], f1[(n, "main")])
                 if a is not None and b is not None and b - a > 0.002]
        worse = [n for n in names if (lambda w, f: f is not None and f < w)(*f1[(n, label)])
                 and (n in cascades or not (lambda w, f: f is not None and f < w)(*f1[(n, "main")]))]
        print(f"{label}: cascade mean {mean:.4f}; falls > 0.002: {falls or 'none'}; with < without: {worse or 'none'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
