"""Input metrics of a fold, counted once per record however often the fold is retried.

`stream.stages.StageRunner` retries a batch that fails as a whole by rolling the stage back and folding its
input again: the records held since the last checkpoint (already folded, and counted, once) and the failed
batch (folded partly, perhaps counted partly). Counted as they are folded, those records would count twice.
So a stage counts what it reads through `inc` (or `later`), and the runner folds inside `tallied`: the updates
of a fold are kept and applied only when the fold succeeds, and a refold of records already counted runs
with `counting=False`, its updates dropped. Outside a tallied fold (a test, an offline replay) `inc` counts
at once.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Protocol

__all__ = ["Counter", "inc", "later", "tallied"]


class Counter(Protocol):
    """What `inc` needs of a metric: a prometheus_client counter (a labelled child included)."""

    def inc(self, amount: float = 1) -> None:
        """Add `amount`."""
        ...


_pending: ContextVar[list[Callable[[], None]] | None] = ContextVar("aiops_tally", default=None)


def later(update: Callable[[], None]) -> None:
    """Run a metric update now, or, inside a tallied fold, when that fold succeeds (and only if it counts)."""
    pending = _pending.get()
    if pending is None:
        update()
    else:
        pending.append(update)


def inc(counter: Counter, amount: float = 1) -> None:
    """`counter.inc(amount)`, through `later`; an amount of 0 changes nothing and is not kept."""
    if amount:
        later(lambda: counter.inc(amount))


@contextmanager
def tallied(counting: bool = True) -> Iterator[None]:
    """Keep the metric updates made inside; apply them if the body returns and `counting`, drop them otherwise."""
    pending: list[Callable[[], None]] = []
    token = _pending.set(pending)
    try:
        yield
    finally:
        _pending.reset(token)
    if counting:  # reached only when the body returned: an exception skips this
        for update in pending:
            update()
