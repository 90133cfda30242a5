"""The classifier evaluated on what human review labelled: the `tickets.labels` topic (or a saved copy).

Every approval and override in the review API publishes the ticket's text with the severity and taxonomy code a
person settled on (`split: review`, `source: approve | override`, who, when, and what triage had predicted).
This reads them from the beginning of the topic (no consumer group), keeps the latest label per ticket, and
prints triage_eval.py's figures for all of them and per source: per-code precision and recall, accuracy, the
gate's split at the threshold.

Read the two sources apart: approvals are texts the gate held and a person found right, overrides are texts a
person corrected, so the classifier scores low on overrides by construction. Their worth is as new cases:
`--save` writes them in the eval set's format, to be read and added to `benchmarks/data/` by hand.

    python benchmarks/review_eval.py [--broker kafka://127.0.0.1:9092] [--topic tickets.labels] [--json]
                                     [--threshold 0.5] [--save labels.ndjson]
    python benchmarks/review_eval.py --data labels.ndjson
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer

sys.path.insert(0, str(Path(__file__).resolve().parent))
from triage_eval import evaluate, load, render, section  # noqa: E402

from correlator.triage import RoutingPolicy  # noqa: E402
from stream.settings import Settings  # noqa: E402

SOURCES = ("override", "approve")


async def read_labels(bootstrap: str, topic: str, idle_s: float = 2.0, timeout_s: float = 60.0) -> list[dict[str, Any]]:
    """The latest label per ticket id on `topic`, read from its start until `idle_s` pass without a record."""
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
                                auto_offset_reset="earliest", fetch_max_wait_ms=100)
    await consumer.start()
    latest: dict[str, dict[str, Any]] = {}
    try:
        start = last = time.monotonic()
        while time.monotonic() - last < idle_s and time.monotonic() - start < timeout_s:
            for records in (await consumer.getmany(timeout_ms=200)).values():
                for record in records:
                    label = json.loads(record.value)
                    latest[str(label["id"])] = label
                    last = time.monotonic()
    finally:
        await consumer.stop()
    return list(latest.values())


def figures(labels: Sequence[dict[str, Any]], threshold: float) -> dict[str, Any]:
    """triage_eval's figures for all labels and for each source."""
    outcomes = evaluate(labels, RoutingPolicy(threshold=threshold))
    sections = {"all": outcomes}
    sections.update({s: [o for o in outcomes if o.record.get("source") == s] for s in SOURCES})
    return {name: section(outs) for name, outs in sections.items()}


def main(argv: Sequence[str] | None = None) -> int:
    """Read the labels, evaluate, print; exit code 0 (1 when there is no label yet)."""
    settings = Settings()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--broker", default=None, help="kafka://host:port (default: AIOPS_BROKER or local)")
    parser.add_argument("--topic", default=settings.topics.tickets_labels)
    parser.add_argument("--data", type=Path, default=None, help="a saved NDJSON copy instead of the topic")
    parser.add_argument("--save", type=Path, default=None, help="write the labels read as NDJSON")
    parser.add_argument("--threshold", type=float, default=settings.triage_threshold)
    parser.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    args = parser.parse_args(argv)
    if args.data is not None:
        labels = load(args.data)
    else:
        bootstrap = Settings(broker=args.broker).bootstrap_servers if args.broker else settings.bootstrap_servers
        labels = asyncio.run(read_labels(bootstrap, args.topic))
    if args.save is not None:
        args.save.write_text("".join(json.dumps(label, ensure_ascii=False) + "\n" for label in labels), "utf-8")
    if not labels:
        print("no labelled examples yet", file=sys.stderr)
        return 1
    data = figures(labels, args.threshold)
    if args.json:
        print(json.dumps({"threshold": args.threshold, "labels": len(labels), "sections": data}, indent=2))
        return 0
    print(f"review labels: {len(labels)} from {args.data or args.topic}, threshold {args.threshold:.2f}")
    for name, part in data.items():
        print("\n".join(render(name, part, args.threshold)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
