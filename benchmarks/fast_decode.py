"""What the hop's parse and the event encoding cost per alert, in process, each beside its baseline in the same run.

- parse: 100-alert Alertmanager webhooks (the load benchmark's bodies) into alert records, by the adapter alone
  (`parse_arrived` + `record_of`: what normalize ran before the fast path) and by `correlator.sources.normalize`
  (the typed msgspec decode); beside them the two whole-body typed decodes that were candidates, msgspec's and
  pydantic-core's JSON validation (`WebhookMessage.model_validate_json`), decode only.
- encode: the lab storm's incident events as `orjson.dumps(event.model_dump(mode="json"))` (before) and
  `encode_incident_event` (`orjson.dumps(event.__dict__)`, the same bytes).

    .venv/bin/python benchmarks/fast_decode.py [--runs 5] [--json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
import timeit
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_workers import machine  # noqa: E402
from ingest_load import make_bodies  # noqa: E402

from correlator.config import DEFAULT_CONFIG  # noqa: E402
from correlator.engine import Correlator  # noqa: E402
from correlator.keys import DEFAULT_KEY_CONFIG  # noqa: E402
from correlator.records import record_of  # noqa: E402
from correlator.sources import normalize, parse, parse_arrived  # noqa: E402
from correlator.sources.alertmanager import WebhookMessage  # noqa: E402
from correlator.sources.fast import _DECODER as DECODER  # noqa: E402  (the fast path's own decoder)
from correlator.sources.fast import alertmanager_records  # noqa: E402
from stream.incident_records import encode_incident_event  # noqa: E402
from tests.paths import LAB_STORM  # noqa: E402


def _us_per(fn: Callable[[], object], items: int, runs: int) -> list[float]:
    """Microseconds per item of `fn` (which handles `items`), best of 3 repeats, for each of `runs` runs."""
    return [min(timeit.repeat(fn, number=1, repeat=3)) / items * 1e6 for _ in range(runs)]


def measure(runs: int) -> dict[str, Any]:
    """Per-alert and per-event costs, medians of `runs`, and the ratios to the baselines."""
    bodies = make_bodies(40, 100)
    now = time.time()
    alerts = 100 * len(bodies)
    assert all(alertmanager_records(b, now, DEFAULT_CONFIG.time_guard, DEFAULT_KEY_CONFIG, None) is not None
               for b in bodies), "the bodies must take the fast path"
    parse_rows = {
        "adapter (parse_arrived + record_of)": lambda: [
            [record_of(a) for a in parse_arrived("alertmanager", b, now).alerts] for b in bodies],
        "normalize (msgspec fast path)": lambda: [normalize("alertmanager", b, now).records for b in bodies],
        "pydantic-core model_validate_json, decode only": lambda: [WebhookMessage.model_validate_json(b)
                                                                   for b in bodies],
        "msgspec typed decode, decode only": lambda: [DECODER.decode(b) for b in bodies],
    }
    records = [record_of(a) for a in parse("generic", LAB_STORM.read_bytes())]
    engine = Correlator(DEFAULT_CONFIG)
    events = engine.ingest(records) + engine.advance(max(r.starts_at for r in records) + 86400)
    events = events * max(1, 2000 // len(events))
    encode_rows = {
        "orjson.dumps(model_dump(mode='json'))": lambda: [orjson.dumps(e.model_dump(mode="json")) for e in events],
        "encode_incident_event (orjson of __dict__)": lambda: [encode_incident_event(e) for e in events],
    }
    out: dict[str, Any] = {"machine": machine(), "runs": runs, "alerts": alerts, "events": len(events),
                           "parse_us_per_alert": {}, "encode_us_per_event": {}}
    for name, fn in parse_rows.items():
        out["parse_us_per_alert"][name] = statistics.median(_us_per(fn, alerts, runs))
    for name, fn in encode_rows.items():
        out["encode_us_per_event"][name] = statistics.median(_us_per(fn, len(events), runs))
    base = out["parse_us_per_alert"]["adapter (parse_arrived + record_of)"]
    out["parse_speedup"] = base / out["parse_us_per_alert"]["normalize (msgspec fast path)"]
    enc = list(out["encode_us_per_event"].values())
    out["encode_speedup"] = enc[0] / enc[1]
    return out


def main(argv: list[str] | None = None) -> int:
    """Print the table (or one JSON object)."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    out = measure(args.runs)
    if args.json:
        print(json.dumps(out))
        return 0
    print(f"{out['machine']}\nmedian of {out['runs']} runs (best of 3 repeats each)")
    for name, us in out["parse_us_per_alert"].items():
        print(f"  parse  {name:<50} {us:7.2f} us/alert")
    print(f"  normalize's fast path: {out['parse_speedup']:.1f}x the adapter")
    for name, us in out["encode_us_per_event"].items():
        print(f"  encode {name:<50} {us:7.2f} us/event")
    print(f"  encode_incident_event: {out['encode_speedup']:.1f}x model_dump")
    return 0


if __name__ == "__main__":
    sys.exit(main())
