"""`aiops`: the one command-line entry point. Each subcommand lives in `stream/commands/<name>.py`.

Subcommand modules are imported lazily so that `aiops replay` or `aiops triage` never pays for Faust.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from correlator.version import version
from stream.flags import SettingsError

__all__ = ["main", "build_parser"]

# name -> (module, one-line help). Each module defines `configure(parser)` and `run(args) -> int`.
COMMANDS: dict[str, tuple[str, str]] = {
    "replay": ("stream.commands.replay", "correlate recorded alerts offline and print the incidents"),
    "up": ("stream.commands.up", "start the embedded broker and a worker in one command"),
    "worker": ("stream.commands.worker", "run a worker against a Kafka cluster (--broker kafka://h1,h2)"),
    "tail": ("stream.commands.tail", "follow any topic (incidents, deadletter, tickets.triaged, ...) as it arrives"),
    "demo": ("stream.commands.demo", "run the lab storm through the embedded pipeline and print the incidents"),
    "triage": ("stream.commands.triage", "triage ticket text and print the routing decision"),
    "redrive": ("stream.commands.redrive", "re-send chosen dead letters to their original topic (--dry-run lists)"),
    "trends": ("stream.commands.trends", "recurring blockers: top tags, codes or services per week, rising or not"),
    "summary": ("stream.commands.summary", "the weekly operations report (Markdown or HTML, with charts)"),
    "mcp": ("stream.commands.mcp", "serve incidents, the review queue, trends and the summary as MCP tools (stdio)"),
}


# `aiops triage TEXT` takes free text first, so its one nested subcommand is recognised before parsing.
NESTED: dict[tuple[str, str], tuple[str, str]] = {
    ("triage", "train"): ("stream.commands.train", "build a versioned triage model from labels and reviews"),
}


def _nested(argv: Sequence[str]) -> argparse.ArgumentParser | None:
    """The parser of a nested subcommand (`aiops triage train`) when argv names one, else None."""
    key = (argv[0], argv[1]) if len(argv) >= 2 else None
    if key is None or key not in NESTED:
        return None
    module, help_text = NESTED[key]
    parser = argparse.ArgumentParser(prog="aiops " + " ".join(key), description=help_text)
    parser.set_defaults(_module=module, command=" ".join(key))
    importlib.import_module(module).configure(parser)
    return parser


def build_parser() -> argparse.ArgumentParser:
    """The argparse tree for every subcommand."""
    parser = argparse.ArgumentParser(
        prog="aiops", description="Streaming AIOps alert correlator",
        epilog="Every setting of `worker` and `up` is a flag, an AIOPS_* environment variable and a key of a "
        "--config FILE (TOML or YAML): `aiops worker --help` lists them all with their variables.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {version()}")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, (module, help_text) in COMMANDS.items():
        sp = sub.add_parser(name, help=help_text, description=help_text)
        sp.set_defaults(_module=module)
        importlib.import_module(module).configure(sp)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the command line and run one subcommand; returns the process exit code."""
    given = list(sys.argv[1:] if argv is None else argv)
    nested = _nested(given)
    args = nested.parse_args(given[2:]) if nested is not None else build_parser().parse_args(given)
    try:
        code: int = importlib.import_module(args._module).run(args)
    except SettingsError as exc:  # a bad flag, variable or config file value: one line, like argparse's own
        print(f"aiops {args.command}: error: {exc}", file=sys.stderr)
        return 2
    return code


if __name__ == "__main__":
    sys.exit(main())
