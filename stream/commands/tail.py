"""`aiops tail TOPIC`: follow any topic the project writes and print each record as it arrives.

`incidents` prints one line per incident event, stage-2 cause and assignment (as `aiops demo` does), and stage 2's
progress records only with `--progress` (bookkeeping for notify, a few a second while stage 2 works);
`deadletter` prints why each record was refused, from its headers (reason, agent, source topic, partition,
offset, and any others), with its size and the start of its bytes; every other topic prints its key and value. `--json` prints one object per record
(topic, partition, offset, key, headers, value) for scripts. A record that is not what its topic should carry is
printed as it is, never a reason to stop following.
"""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

import orjson
from aiokafka.structs import ConsumerRecord
from pydantic import ValidationError

from stream.feed import format_event, topic_records
from stream.incident_records import decode_incident_record, stage2_kind
from stream.settings import Settings, TopicNames

__all__ = ["configure", "run", "format_record", "record_json", "shown", "TAILABLE"]

TAILABLE: dict[str, str] = {field.default: name for name, field in TopicNames.model_fields.items()}
"""Topic as the user names it (its default Kafka name, e.g. `tickets.triaged`) -> its TopicNames field."""

PREVIEW_CHARS = 200
"""How much of a value a line shows; `--json` shows all of it."""

# Dead-letter headers shown first, in this order (what the record is, then where it came from); others follow.
DEADLETTER_FIRST = ("reason", "category", "agent", "topic", "partition", "offset", "size")


def configure(parser: argparse.ArgumentParser) -> None:
    """Flags of `aiops tail`."""
    parser.add_argument("what", choices=sorted(TAILABLE), help="the topic to follow, by its default name; "
                        "the Kafka name comes from the settings (AIOPS_TOPICS__DEADLETTER, ...)")
    parser.add_argument("--broker", default=None, help="kafka://host:9092 (default: AIOPS_BROKER)")
    parser.add_argument("--from-beginning", action="store_true", help="replay the topic from its start")
    parser.add_argument("--json", action="store_true", help="print each record as one JSON line with its headers")
    parser.add_argument("--count", type=int, default=None, help="stop after this many records")
    parser.add_argument("--progress", action="store_true", help="incidents: also print stage 2's progress records "
                        "(hidden by default: how far stage 2 has decided, for notify; not incidents)")


def _text(raw: bytes | None) -> str:
    if raw is None:
        return "null"
    return raw.decode("utf-8", errors="backslashreplace")


def _headers(record: ConsumerRecord[bytes, bytes]) -> dict[str, str]:
    return {name: _text(value) for name, value in (record.headers or ())}


def _preview(raw: bytes | None) -> str:
    """A value on one line: compact JSON when it is JSON, else its text; cut at PREVIEW_CHARS."""
    if raw is None:
        return "null"
    try:
        text = orjson.dumps(orjson.loads(raw)).decode()
    except orjson.JSONDecodeError:
        text = _text(raw).replace("\n", "\\n")
    return text if len(text) <= PREVIEW_CHARS else f"{text[:PREVIEW_CHARS]}... ({len(raw)} bytes)"


def _where(record: ConsumerRecord[bytes, bytes]) -> str:
    return f"{record.topic}[{record.partition}]@{record.offset}"


def _deadletter_line(record: ConsumerRecord[bytes, bytes]) -> str:
    headers = _headers(record)
    headers.setdefault("size", str(len(record.value or b"")))
    ordered = [n for n in DEADLETTER_FIRST if n in headers] + sorted(set(headers) - set(DEADLETTER_FIRST))
    fields = " ".join(f"{name}={orjson.dumps(headers[name]).decode()}" for name in ordered)
    return f"{_where(record)} key={_text(record.key)} {fields} value={_preview(record.value)}"


def format_record(kind: str, record: ConsumerRecord[bytes, bytes]) -> str:
    """One terminal line for a record of the topic named `kind` (a TopicNames field)."""
    if kind == "deadletter":
        return _deadletter_line(record)
    if kind == "incidents":
        try:
            return format_event(decode_incident_record(record.value, record.headers))
        except ValidationError:
            pass  # not an incident event (a foreign record): shown as it is below
    return f"{_where(record)} key={_text(record.key)} {_preview(record.value)}"


def shown(kind: str, record: ConsumerRecord[bytes, bytes], progress: bool = False) -> bool:
    """Whether `aiops tail` prints a record: all of them, except stage 2's progress records on `incidents` unless
    `progress` (they say how far stage 2 has decided, several a second, and would bury the incidents a person
    follows); neither printed nor counted by `--count` when hidden."""
    return kind != "incidents" or progress or stage2_kind(record.headers) != b"progress"


def record_json(record: ConsumerRecord[bytes, bytes]) -> dict[str, Any]:
    """The JSON form of a record: where it is, its key and headers, and its value (parsed when it is JSON)."""
    value: Any
    try:
        value = orjson.loads(record.value) if record.value is not None else None
    except orjson.JSONDecodeError:
        value = _text(record.value)
    return {"topic": record.topic, "partition": record.partition, "offset": record.offset,
            "timestamp_ms": record.timestamp, "key": None if record.key is None else _text(record.key),
            "headers": _headers(record), "size": len(record.value or b""), "value": value}


def run(args: argparse.Namespace) -> int:
    """Follow the topic until Ctrl-C (or `--count` records)."""
    from stream.security import client_options  # imports Faust: only when tailing, not for every `aiops` command

    settings = Settings.from_args(broker=args.broker)
    kind = TAILABLE[args.what]
    topic = getattr(settings.topics, kind)

    async def follow() -> None:
        seen = 0
        if args.count is not None and args.count <= 0:
            return
        async for record in topic_records(settings.bootstrap_servers, topic, from_beginning=args.from_beginning,
                                          client_options=client_options(settings)):
            if not shown(kind, record, args.progress):
                continue
            line = orjson.dumps(record_json(record)).decode() if args.json else format_record(kind, record)
            print(line, flush=True)
            seen += 1
            if args.count is not None and seen >= args.count:
                return

    try:
        asyncio.run(follow())
    except KeyboardInterrupt:
        pass
    return 0
