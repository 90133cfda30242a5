"""`aiops mcp`: the desk as MCP tools over stdio (`stream.mcp_server`), for an MCP client that starts it.

It talks to a worker's web API: `--url` (default AIOPS_API_URL, else http://127.0.0.1:<AIOPS_WEB_PORT>) with
`--token` (default AIOPS_API_TOKEN; an operator token to acknowledge and review where tokens are configured).
Needs the `mcp` extra (`pip install '.[mcp]'`).
"""

from __future__ import annotations

import argparse
import sys

from stream.api_client import client_of
from stream.settings import Settings

__all__ = ["configure", "run"]


def configure(parser: argparse.ArgumentParser) -> None:
    """Flags of `aiops mcp`."""
    parser.add_argument("--url", default=None, help="the worker's web API (default: AIOPS_API_URL, else "
                        "http://127.0.0.1:<AIOPS_WEB_PORT>)")
    parser.add_argument("--token", default=None, help="bearer token (default: AIOPS_API_TOKEN)")


def run(args: argparse.Namespace) -> int:
    """Serve the tools on stdin/stdout until the client closes them."""
    try:
        from stream.mcp_server import build_server
    except ImportError as exc:
        print(f"aiops mcp: the MCP SDK is not installed (pip install '.[mcp]'): {exc}", file=sys.stderr)
        return 2
    settings = Settings.from_args(api_token=args.token)
    build_server(client_of(settings, args.url)).run("stdio")
    return 0
