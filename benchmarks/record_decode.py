"""What decoding an `alerts` record costs per alert, the typed decode (`stream.batches.decode_batch`) beside the
checked path it falls back to (`_decode_checked`: orjson, per-field type checks, a record per dict), on the
records the HTTP ingest writes for the throughput benchmark's storm, in the same run (medians of `--runs`,
each the best of 5 passes). Also what building one `AlertRecord` costs, the msgspec struct beside a frozen
slotted dataclass of the same fields (what it was until issue 19).

    .venv/bin/python benchmarks/record_decode.py
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import timeit
from collections.abc import Callable
from dataclasses import field, make_dataclass
from pathlib import Path
from typing import Any

import msgspec
from msgspec import NODEFAULT

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from pipeline_throughput import storm_records  # noqa: E402
from throughput_part import hop_records  # noqa: E402

from correlator.records import AlertRecord  # noqa: E402
from stream.batches import _decode_checked, decode_batch  # noqa: E402


def dataclass_twin() -> type:
    """`AlertRecord` as it was until issue 19: a frozen slotted dataclass of the same fields and defaults."""
    specs: list[Any] = []
    for f in msgspec.structs.fields(AlertRecord):
        if f.default is not NODEFAULT:
            specs.append((f.name, f.type, field(default=f.default)))
        elif f.default_factory is not NODEFAULT:
            specs.append((f.name, f.type, field(default_factory=f.default_factory)))
        else:
            specs.append((f.name, f.type))
    return make_dataclass("DataclassRecord", specs, slots=True, frozen=True)


def per_alert_us(fn: Callable[[bytes], object], values: list[bytes], alerts: int) -> float:
    """Microseconds per alert of `fn` over every value, best of 5 passes."""
    return min(timeit.repeat(lambda: [fn(v) for v in values], number=1, repeat=5)) / alerts * 1e6


def main() -> int:
    """Print the medians."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--bodies", type=int, default=200, help="100-alert bodies to cut into `alerts` records")
    args = p.parse_args()
    bodies, _ = storm_records(args.bodies, 100, seed=7)
    values = [value for _, value in hop_records(bodies, 4)]
    alerts = sum(len(s.records) for v in values for s in decode_batch(v)[0])
    assert all(decode_batch(v) == _decode_checked(v) for v in values)
    rows: dict[str, list[float]] = {"typed": [], "checked": [], "struct": [], "dataclass": []}
    for _ in range(args.runs):
        rows["typed"].append(per_alert_us(decode_batch, values, alerts))
        rows["checked"].append(per_alert_us(_decode_checked, values, alerts))
        for name, cls in (("struct", AlertRecord), ("dataclass", dataclass_twin())):
            rows[name].append(min(timeit.repeat(lambda c=cls: c("f", "k", "firing", "warning", 1.0, None, {}),  # type: ignore[misc]
                                                number=100_000, repeat=5)) / 100_000 * 1e6)
    med = {k: statistics.median(v) for k, v in rows.items()}
    print(f"{len(values)} records, {alerts} alerts; load average {', '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"decode, us/alert: typed {med['typed']:.2f}, checked {med['checked']:.2f} "
          f"({med['checked'] / med['typed']:.1f}x), median of {args.runs}")
    print(f"one record, us: msgspec struct {med['struct']:.2f}, dataclass {med['dataclass']:.2f} "
          f"({med['dataclass'] / med['struct']:.1f}x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
