"""Writing a benchmark's generated section into benchmarks/RESULTS.md, shared by the benchmarks that have one."""

from __future__ import annotations

from pathlib import Path

__all__ = ["write_section"]


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
