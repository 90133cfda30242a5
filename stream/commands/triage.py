"""`aiops triage [TEXT] [--threshold 0.5] [--json]`: triage one text, or NDJSON tickets on stdin, and print the decision.

`aiops triage train` builds a learned model instead (stream/commands/train.py). Each stdin line is an object with `text` and optionally `ticket_id`. A line that is not such an object is
reported on stderr with its line number and skipped; the exit code is then 1. Nothing here needs Faust.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import orjson

from correlator.triage import (
    DEFAULT_ROUTING,
    Classification,
    Classifier,
    RouteDecision,
    RoutingPolicy,
    RuleClassifier,
    TriageConfig,
    build_classifier,
    route,
)

__all__ = ["configure", "decision_record", "run"]


@dataclass(frozen=True, slots=True)
class _Item:
    ticket_id: str | None
    text: str


@dataclass(frozen=True, slots=True)
class _Refused:
    line: int
    reason: str


def _threshold(value: str) -> float:
    number = float(value)
    if not 0.0 <= number <= 1.0:
        raise argparse.ArgumentTypeError(f"{value} is not in [0, 1]")
    return number


def configure(parser: argparse.ArgumentParser) -> None:
    """Arguments of `aiops triage`."""
    parser.add_argument("text", nargs="?", help="ticket text; absent: NDJSON tickets on stdin")
    parser.add_argument("--threshold", type=_threshold, default=DEFAULT_ROUTING.threshold,
                        help="below this confidence a ticket goes to human review (default %(default)s)")
    parser.add_argument("--json", action="store_true", help="one JSON object per ticket")
    parser.add_argument("--classifier", metavar="MODULE:FACTORY", default=None,
                        help="optional plug-in classifier; the rules answer when it fails")
    parser.add_argument("--model-dir", type=Path, default=None,
                        help="triage with the newest learned model in DIR beside the rules (`aiops triage train`)")


def _read(stream: TextIO) -> Iterator[_Item | _Refused]:
    """Tickets from NDJSON lines; blank lines are skipped, bad ones refused with a reason."""
    for number, line in enumerate(stream, 1):
        if not line.strip():
            continue
        try:
            record: Any = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            yield _Refused(number, f"not JSON: {exc}")
            continue
        if not isinstance(record, dict) or not isinstance(record.get("text"), str):
            yield _Refused(number, "expected an object with a string `text`")
            continue
        ticket_id = record.get("ticket_id")
        yield _Item(None if ticket_id is None else str(ticket_id), record["text"])


def decision_record(ticket_id: str | None, result: Classification, decision: RouteDecision) -> dict[str, Any]:
    """One triage decision as JSON (what `aiops triage --json` prints per ticket, and the MCP tool returns)."""
    return {
        "ticket_id": ticket_id,
        "severity": result.severity,
        "confidence": result.confidence,
        "taxonomy_code": result.taxonomy_code,
        "tags": list(result.tags),
        "reason": result.reason,
        "status": decision.status,
        "tier": decision.tier,
        "sla_minutes": decision.sla_minutes,
        "model_version": result.model_version,
    }


def _as_json(item: _Item, result: Classification, decision: RouteDecision) -> str:
    return orjson.dumps(decision_record(item.ticket_id, result, decision)).decode()


def _as_text(item: _Item, result: Classification, decision: RouteDecision) -> str:
    sla = f" (SLA {decision.sla_minutes} min)" if decision.sla_minutes is not None else ""
    lines = [f"ticket:     {item.ticket_id}"] if item.ticket_id is not None else []
    lines += [
        f"severity:   {result.severity}",
        f"confidence: {result.confidence:.2f}",
        f"taxonomy:   {result.taxonomy_code}",
        f"tags:       {' '.join(result.tags) or '-'}",
        f"reason:     {result.reason}",
        f"decision:   {decision.describe()}{sla}",
    ]
    return "\n".join(lines)


def _emit(item: _Item, classifier: Classifier, policy: RoutingPolicy, as_json: bool, first: bool) -> None:
    result = classifier.classify(item.text)
    decision = route(result, policy)
    if as_json:
        print(_as_json(item, result, decision))
        return
    print(("" if first else "\n") + _as_text(item, result, decision))


def _learned(directory: Path) -> Classifier:
    """The rules with the newest model of `directory`; ValueError when there is none or it cannot be used."""
    from stream.triage_model import ModelWatch

    watch = ModelWatch(directory, RuleClassifier())
    changed = watch.poll()
    if watch.classifier is None:
        raise ValueError(changed or watch.status())
    print(watch.status(), file=sys.stderr)
    return watch.classifier


def run(args: argparse.Namespace) -> int:
    """Triage and print; 0 when every ticket was triaged, 1 when a stdin line was refused, 2 on bad config."""
    try:
        classifier = build_classifier(TriageConfig(plugin=args.classifier))
        if args.model_dir is not None:
            classifier = _learned(args.model_dir)
    except ValueError as exc:
        print(f"aiops triage: {exc}", file=sys.stderr)
        return 2
    policy = RoutingPolicy(threshold=args.threshold)
    items = [_Item(None, args.text)] if args.text is not None else _read(sys.stdin)
    code, first = 0, True
    for item in items:
        if isinstance(item, _Refused):
            print(f"aiops triage: stdin line {item.line}: {item.reason}", file=sys.stderr)
            code = 1
            continue
        _emit(item, classifier, policy, args.json, first)
        first = False
    return code
