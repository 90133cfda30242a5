"""`aiops triage train`: build a versioned triage model artifact from labelled tickets and reviewer overrides.

    aiops triage train [--labels FILE ...] [--broker kafka://host:9092] [--out DIR]

Labels: the author's set (`benchmarks/data/triage_eval.ndjson` by default, when it is there), the guideline set
(`benchmarks/data/triage_guideline.ndjson`: texts written from the labelling guideline, see its header), every
`--labels` NDJSON file (a dump of `tickets.labels`, say), and with `--broker` every record on `tickets.labels`
read from the beginning (a later label for the same ticket replaces an earlier one). Prints the artifact's
path, version and trained-on counts; workers with `--triage-model-dir DIR` load it within
`--triage-model-check`. Needs the `learn` extra (scikit-learn, skops); without it, says so and exits 2.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path

from correlator.triage import RuleClassifier

__all__ = ["AUTHOR_SET", "GUIDELINE_SET", "configure", "run"]

AUTHOR_SET = Path(__file__).resolve().parents[2] / "benchmarks" / "data" / "triage_eval.ndjson"
# Training data written from the labelling guideline (its severity policy in examples, English and Latvian).
GUIDELINE_SET = AUTHOR_SET.with_name("triage_guideline.ndjson")
BROKER_IDLE_S = 2.0


def configure(parser: argparse.ArgumentParser) -> None:
    """Arguments of `aiops triage train`."""
    parser.add_argument("--labels", type=Path, action="append", default=[],
                        help="labelled NDJSON (text, taxonomy_code, severity); repeatable")
    parser.add_argument("--no-author-set", action="store_true",
                        help=f"leave out the author's labelled set ({AUTHOR_SET.name})")
    parser.add_argument("--no-guideline-set", action="store_true",
                        help=f"leave out the labelled set written from the guideline ({GUIDELINE_SET.name})")
    parser.add_argument("--broker", default=None, help="also read every record of tickets.labels from this broker "
                        "(kafka://host:9092)")
    parser.add_argument("--out", type=Path, default=Path("models"), help="artifact directory (default %(default)s)")


async def _broker_lines(broker: str) -> list[bytes]:
    from stream.feed import topic_records
    from stream.security import client_options
    from stream.settings import Settings

    settings = Settings.from_args(broker=broker)
    return [record.value or b"" async for record in topic_records(
        settings.bootstrap_servers, settings.topics.tickets_labels, idle_timeout=BROKER_IDLE_S,
        client_options=client_options(settings))]


def run(args: argparse.Namespace) -> int:
    """Train, calibrate, save; 0 on success, 1 when no labels were usable, 2 without the `learn` extra."""
    from stream.triage_model import learn_available

    if not learn_available():
        print("aiops triage train: needs scikit-learn and skops: pip install 'aiops-correlator[learn]'",
              file=sys.stderr)
        return 2
    from stream.triage_model import read_labels, save, train

    sources: list[tuple[str, list[str] | list[bytes]]] = []
    if not args.no_author_set and AUTHOR_SET.is_file():
        sources.append(("author", AUTHOR_SET.read_text(encoding="utf-8").splitlines()))
    if not args.no_guideline_set and GUIDELINE_SET.is_file():
        sources.append(("guideline", GUIDELINE_SET.read_text(encoding="utf-8").splitlines()))
    sources += [(str(path), path.read_text(encoding="utf-8").splitlines()) for path in args.labels]
    if args.broker:
        sources.append(("tickets.labels", asyncio.run(_broker_lines(args.broker))))
    examples, refused = [], []
    for name, lines in sources:
        got, bad = read_labels(lines, name)
        examples += got
        refused += bad
    for line in refused:
        print(f"aiops triage train: refused {line}", file=sys.stderr)
    if not examples:
        print("aiops triage train: no labelled examples", file=sys.stderr)
        return 1
    model = train(examples, RuleClassifier())
    path = save(model, args.out, time.time())
    manifest = json.loads(path.with_suffix(".json").read_text())
    print(f"model {model.version} -> {path}")
    print(f"trained on {manifest['trained_on']['total']} labelled tickets: "
          + ", ".join(f"{k} {v}" for k, v in manifest["trained_on"]["by_source"].items()))
    print("confidence calibrated on the out-of-fold decisions over every labelled ticket the rules were unsure of "
          f"({model.calibration.reviews} of them reviewers' labels); the gate reads the lesser of it and the rules' "
          "support for the same answer")
    return 0
