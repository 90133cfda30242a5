"""What the notify store's checkpoint of one step costs, by how many subjects it holds (session 41, limits42).

Every fold step marks the rate limits changed (`NotifyStore.took`), so the limits record is written after every batch
of notify and notify_control. It was built from `NotifyState.to_dict()`, which serializes every subject held, to keep
two small maps of it: a checkpoint cost O(subjects held) per batch (40% of a worker's samples in a loaded full soak).
Now it is `NotifyState.limits_to_dict()`. The baseline is the old formula, timed in the same run on the same state.

A partition holding N subjects (paged incidents kept for `notify_retention`); per round one new incident is folded
and the store's changed keys written. The figures are CPU µs per checkpoint (`time.process_time`, median of 5
interleaved rounds of 200 steps), with the limits record compared byte for byte.

    python benchmarks/notify_store_cost.py
"""

from __future__ import annotations

import sys
import time
from functools import partial
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import orjson

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from notify_progress_cost import ROUTES, T0, _incident, interleaved  # noqa: E402

from correlator.notify import NotifyPolicy, NotifyState, on_record, parse_notify  # noqa: E402
from stream.notify.store import NotifyStore  # noqa: E402

POLICY = NotifyPolicy(page_causes=False)


def _old_limits(state: NotifyState) -> bytes:
    """The limits record as it was built before: from the whole state's snapshot (every subject serialized)."""
    limits = state.to_dict()
    return orjson.dumps({"buckets": limits["buckets"], "queues": limits["queues"]})


class _OldStore(NotifyStore):
    """The store as it was: its limits record built by `_old_limits`."""

    def _value(self, kind: str, item_id: str) -> bytes | None:
        return _old_limits(self.state) if kind == "q" else super()._value(kind, item_id)


def _table() -> Any:
    return SimpleNamespace(data={}, changelog_topic=SimpleNamespace(get_topic_name=lambda: "notify-changelog"))


def run(held: int, old: bool, steps: int = 200) -> tuple[float, bytes]:
    """CPU seconds per checkpoint of one step with `held` subjects, and the last limits record."""
    config, store = parse_notify(ROUTES), (_OldStore if old else NotifyStore)(_table(), 0, sync_marker=False)
    for i in range(held):
        store.took(on_record(store.state, _incident(f"old-{i}", T0), T0, config, (), POLICY))
    store.write_keys()
    spent, limits = 0.0, b""
    for r in range(steps):
        at = T0 + 1 + r
        store.took(on_record(store.state, _incident(f"new-{r}", at), at, config, (), POLICY))
        started = time.process_time()
        written = dict(store.write_keys())
        spent += time.process_time() - started
        limits = written[b"0|q|"]
    return spent / steps, limits


def main() -> None:
    """A table: subjects held, µs per checkpoint with the old limits record and the new one, ratio, records equal."""
    print("| subjects held | old µs/checkpoint | new µs/checkpoint | old/new | limits records equal |")
    print("|---:|---:|---:|---:|---|")
    for held in (100, 1_000, 5_000):
        mo, mn, same = interleaved(5, partial(run, held, True), partial(run, held, False))
        print(f"| {held:,} | {mo:,.0f} | {mn:,.0f} | {mo / mn:.1f}x | {'yes' if same else 'NO'} |", flush=True)


if __name__ == "__main__":
    main()
