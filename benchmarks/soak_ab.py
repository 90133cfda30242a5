"""Quick soaks with one worker setting at two values, interleaved, judged as an on-call would (session 38, soak38):
per run and value, the pages beyond replay's parents (`soak_pages.classify`), the faults not paged for a reason other
than the broker's documented loss or a grouping into another fault's page, and the most pages one fault got.

    python benchmarks/soak_ab.py AIOPS_NOTIFY_POLICY__FOLLOW_PROGRESS_S 0 300 --rounds 3 --keep /tmp/ab
    python benchmarks/soak_ab.py AIOPS_NOTIFY_POLICY__FOLLOW_PROGRESS_S 0 300 --judge /tmp/ab   # judge kept runs

Each invocation is `benchmarks/soak.py --quick --keep DIR/<value>-<round>` (baseline and chaos) with the variable
set (the soak forwards `AIOPS_NOTIFY_POLICY__*` and `AIOPS_GROUPING__*` to its workers).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from soak import build_input  # noqa: E402
from soak_pages import parents_per_fault  # noqa: E402

from tests.paths import MICROSS  # noqa: E402

EXPLAINED = ("no incident", "never reached notify", "grouped into fault")
"""Verdicts of `soak.unpaged_trace` that are no lost page: the broker's documented loss, or a grouping."""


def judge_run(run: dict[str, Any], parents: dict[str, int]) -> dict[str, Any]:
    """B (pages beyond replay's parents), U (faults unpaged, unexplained), M (most pages of one fault) of one run."""
    pages = {f: n for f, n in run["pages"].items()}
    beyond = sum(max(n - max(parents.get(f, 0), 1), 0) for f, n in pages.items() if n)
    unexplained = sorted((f for f, u in run.get("unpaged", {}).items()
                          if not u["verdict"].startswith(EXPLAINED)), key=int)
    return {"B": beyond, "U": len(unexplained), "U_faults": unexplained, "M": max(pages.values(), default=0),
            "pages": sum(pages.values()), "deaths": len(run["deaths"]), "crashed": run["crashed"],
            "per_fault": [pages[f] for f in sorted(pages, key=int)]}


def main(argv: list[str] | None = None) -> int:
    """Run (unless `--judge`) and print one row per run."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("variable")
    p.add_argument("values", nargs=2)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--keep", type=Path, default=None, help="where the runs go (DIR/<value>-<round>)")
    p.add_argument("--judge", type=Path, default=None, help="only judge the runs kept under this directory")
    args = p.parse_args(argv)
    where = args.judge or args.keep
    if where is None:
        p.error("--keep or --judge")
    if args.judge is None:
        for r in range(args.rounds):
            for value in args.values:
                out = where / f"{value}-{r}"
                env = {**os.environ, args.variable: value}
                where.mkdir(parents=True, exist_ok=True)
                with (where / f"{value}-{r}.out").open("w") as log:
                    subprocess.run([sys.executable, str(ROOT / "benchmarks" / "soak.py"), "--quick", "--keep",
                                    str(out)], env=env, stdout=log, stderr=subprocess.STDOUT, check=False)
    rows = []
    for value in args.values:
        for r in range(args.rounds):
            report_path = where / f"{value}-{r}" / "report.json"
            if not report_path.exists():
                print(f"{value}-{r}: no report")
                continue
            report = json.loads(report_path.read_text())
            faults = len(next(iter(report["runs"].values()))["pages"])
            data = build_input(faults, 1800.0, end_at=time.time() - 4 * 3600)  # as the soak places it
            parents = dict(parents_per_fault(data.alerts, data.truth, _topology()))
            for name, run in report["runs"].items():
                row = {"value": value, "round": r, "run": name, "load": report["load"][0][0], **judge_run(run, parents)}
                rows.append(row)
                print(json.dumps(row))
    for name in ("baseline", "chaos"):
        for value in args.values:
            mine = [x for x in rows if x["run"] == name and x["value"] == value]
            print(f"{name} {args.variable}={value}: runs {len(mine)}, sum B {sum(x['B'] for x in mine)}, "
                  f"sum U {sum(x['U'] for x in mine)}, max M {max((x['M'] for x in mine), default=0)}, "
                  f"deaths {sum(x['deaths'] for x in mine)}, crashed {sum(x['crashed'] for x in mine)}")
    return 0


def _topology() -> Any:
    from correlator.topology import parse_topology
    return parse_topology((MICROSS / "topology.json").read_text())


if __name__ == "__main__":
    sys.exit(main())
