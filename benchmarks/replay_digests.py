"""Whether a change moves any replay: a digest of every replay's parents (alert fingerprint -> parent id), no score.

Replays rca-micross, the TUNING and DEVELOPMENT noise and cascade sets and the DEVELOPMENT_TOPOLOGY cascades (never a
held-out seed, never the storms), with and without the topology file, under the default GroupingConfig and the
fifteenth round's (late_symptom_s=60, borrowed_callers, path_folds_labelled), prompt_pairs on as the stream runs it.
Run it on two trees and diff the digests: equal lines mean the change groups nothing differently there. Session 39
(across39) used it to show that `GroupingConfig.late_placed` off changes no replay.

    python benchmarks/replay_digests.py                 # about 10 min on a quiet machine (132 replays)
    python benchmarks/replay_digests.py late_placed=True  # the same with fields changed in both configs
"""

from __future__ import annotations

import ast
import hashlib
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import rca_sets  # noqa: E402
from accuracy_rca import development_sets, stage2  # noqa: E402

from correlator.stage2 import GroupingConfig  # noqa: E402


def main(argv: list[str]) -> int:
    changed = {name: ast.literal_eval(value) for name, _, value in (a.partition("=") for a in argv)}
    configs = {"default": GroupingConfig(prompt_pairs=True, **changed),
               "round15": GroupingConfig(prompt_pairs=True, late_symptom_s=60, borrowed_callers=True,
                                         path_folds_labelled=True, **changed)}
    sets = [d for d in development_sets(rca_sets.micross()) if "storms" not in d.name]
    sets += [rca_sets.cascades(seed=s) for s in rca_sets.DEVELOPMENT_TOPOLOGY["cascades"]]
    for data in sets:
        for name, config in configs.items():
            for topology in (False, True) if data.topology is not None else (False,):
                began = time.monotonic()
                parents = stage2(data, config, topology)
                digest = hashlib.sha1(repr(sorted(parents.items())).encode()).hexdigest()[:12]
                print(f"{data.name} | {name} | file={topology} | {digest} | {time.monotonic() - began:.0f}s",
                      flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
