"""Writing a benchmark's generated section into benchmarks/RESULTS.md, shared by the benchmarks that have one."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["publish", "write_section"]


def write_section(path: Path, generated: str, *, begin: str, end: str, heading: str) -> None:
    """Put `generated` (which opens with `begin` and closes with `end`) where those markers stand, leaving all
    else alone (notes written under a section stay); without the markers, append it under `heading`."""
    old = path.read_text() if path.exists() else "# Benchmark results\n"
    start, stop = old.find(begin), old.find(end)
    if start >= 0 and stop > start:
        new = old[:start] + generated + old[stop + len(end):]
    else:
        new = old.rstrip("\n") + f"\n\n{heading}\n\n{generated}\n"
    path.write_text(new)


def publish(result: dict[str, Any], render: Callable[[], str], *, as_json: bool, results: Path | None,
            begin: str, end: str, heading: str) -> int:
    """Print a benchmark's result: one JSON line with `--json`, else `render()`'s markdown, which `--results`
    also writes between the benchmark's markers in that RESULTS.md. Returns 0, the exit status."""
    if as_json:
        print(json.dumps(result))
        return 0
    text = render()
    print(text)
    if results:
        write_section(results, f"{begin}\n{text}\n{end}", begin=begin, end=end, heading=heading)
    return 0
