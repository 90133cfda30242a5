"""`aiops tail incidents`: print incident events, and stage 2's causes and assignments, as they arrive."""

from __future__ import annotations

import argparse
import asyncio

import orjson

from stream.feed import format_event, incident_events
from stream.settings import Settings

__all__ = ["configure", "run"]


def configure(parser: argparse.ArgumentParser) -> None:
    """Flags of `aiops tail`."""
    parser.add_argument("what", choices=["incidents"], help="the topic to follow")
    parser.add_argument("--broker", default=None, help="kafka://host:9092 (default: AIOPS_BROKER)")
    parser.add_argument("--from-beginning", action="store_true", help="replay the topic from its start")
    parser.add_argument("--json", action="store_true", help="print each event as one JSON line")


def run(args: argparse.Namespace) -> int:
    """Follow the incidents topic until Ctrl-C."""
    settings = Settings.from_args(broker=args.broker)

    async def follow() -> None:
        async for ev in incident_events(settings.bootstrap_servers, settings.topics.incidents,
                                        from_beginning=args.from_beginning):
            print(orjson.dumps(ev.model_dump()).decode() if args.json else format_event(ev), flush=True)

    try:
        asyncio.run(follow())
    except KeyboardInterrupt:
        pass
    return 0
