"""What the type checks on `alerts` records cost the correlate agent, beside the same decode without them.

`stream.batches.decode_batch` checks every alert of an `alerts` record for the field types the engine relies on
(any producer can write to `alerts`, and a string where a time belongs crashed the engine's batch). The check
runs per alert on the hot path, so this measures it: the storm of `stage_costs.py` (same seed) normalized into
`alerts` record values, then, alternating in one process, `decode_batch` as shipped (since issue 19 a typed
msgspec decode, whose field types are the check) and the orjson decode with the check swapped for the identity
(the baseline), and the correlate stage as a whole (decode + `Correlator.ingest`) both ways. Medians of runs, and
the ratio to the same-run baseline.

    python benchmarks/alerts_record_checks.py             # 1,000 x 100 alerts, 7 runs each way
    python benchmarks/alerts_record_checks.py --quick
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from pipeline_throughput import storm_records  # noqa: E402
from stage_costs import _normalize, batches_of  # noqa: E402

import stream.batches as batches  # noqa: E402
from correlator.engine import Correlator  # noqa: E402
from correlator.state import DictStore  # noqa: E402
from stream.runtime import tune_gc  # noqa: E402
from stream.settings import Settings  # noqa: E402


def alerts_values(records: int, per_record: int, seed: int) -> tuple[list[dict[int, bytes]], int]:
    """The `alerts` record values normalize writes for the storm, per batch and partition; and the alert count."""
    bodies, alerts = storm_records(records, per_record, seed)
    settings = Settings()
    cache: dict[str, int] = {}
    out, offset = [], 0
    for batch in batches_of(bodies, settings.step_bytes):
        out.append(_normalize(batch, offset, cache, settings.partitions_for("alerts")))
        offset += len(batch)
    return out, alerts


def _decode(values: list[dict[int, bytes]]) -> None:
    for by_partition in values:
        for value in by_partition.values():
            batches.decode_batch(value)


def _correlate(values: list[dict[int, bytes]]) -> None:
    settings = Settings()
    engines = {p: Correlator(settings.correlation_config(), DictStore()) for p in range(settings.partitions)}
    for by_partition in values:
        for p, value in by_partition.items():
            segments, _ = batches.decode_batch(value)
            engines[p].ingest([r for s in segments for r in s.records])


def timed(work: Callable[[list[dict[int, bytes]]], None], values: list[dict[int, bytes]], checked: bool) -> float:
    """Seconds of one pass of `work`, with the shipped check or the identity in its place."""
    shipped, shipped_check = batches.decode_batch, batches._checked
    if not checked:
        # The baseline: the decode as it was before the check (orjson, no type checks); the shipped decode is
        # the typed one (msgspec), whose types are the check.
        batches.decode_batch, batches._checked = batches._decode_checked, lambda alerts: alerts
    try:
        t0 = time.perf_counter()
        work(values)
        return time.perf_counter() - t0
    finally:
        batches.decode_batch, batches._checked = shipped, shipped_check


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=7)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--quick", action="store_true", help="small, one run each way: proves it works, not speed")
    p.add_argument("--json", action="store_true", help="one JSON line with the figures")
    args = p.parse_args(argv)
    records, runs = (30, 1) if args.quick else (1000, args.runs)
    tune_gc()
    values, alerts = alerts_values(records, 100, args.seed)
    rows = []
    for name, work in (("decode_batch", _decode), ("correlate (decode + ingest)", _correlate)):
        base: list[float] = []
        checked: list[float] = []
        for _ in range(runs):
            base.append(timed(work, values, checked=False))
            checked.append(timed(work, values, checked=True))
        b, c = statistics.median(base) * 1e6 / alerts, statistics.median(checked) * 1e6 / alerts
        rows.append({"stage": name, "baseline_us_per_alert": b, "checked_us_per_alert": c, "ratio": c / b})
    if args.json:
        print(json.dumps({"alerts": alerts, "runs": runs, "rows": rows}))
        return 0
    print(f"{alerts:,} alerts in {sum(len(v) for v in values):,} alerts records; {runs} runs each way, alternating")
    print("| stage | baseline us/alert | checked us/alert | checked / baseline |")
    print("|---|---:|---:|---:|")
    for r in rows:
        print(f"| {r['stage']} | {r['baseline_us_per_alert']:.3f} | {r['checked_us_per_alert']:.3f} "
              f"| {r['ratio']:.3f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
