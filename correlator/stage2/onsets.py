"""When stage 2's children started, per scope: whether an incident starts alone or with others.

A fault starts several incidents at once (its services, hosts and metrics alert within seconds of each other);
background noise is one incident here and there. So a child that starts long after a group's reach is taken as
the cause carrying on only when it is not alone: another incident of its scope started at most `before_s` ahead of
it, or with it (`engine`). Only earlier children count: stage 2 releases children in order of first alert, so
all of them are known when a child is released, and the answer is the same in a replay, in the stream and after
a restart. The same index finds the groups whose children started just before a child that names one entity only
(`engine._burst`: it follows the one burst it starts in).

The index is derived state: it is rebuilt from the store (held children and the children of every group), and an
entry counts only while its child still starts at that time (a late alert moves a child's first alert earlier,
and the child is indexed again there), so a stale entry changes nothing.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterator

__all__ = ["Onsets"]

Onset = tuple[float, str]


class Onsets:
    """First alerts of the children stage 2 knows, sorted per scope."""

    def __init__(self) -> None:
        self._by_scope: dict[str, list[Onset]] = {}

    def add(self, scope: str, first_seen: float, child_id: str) -> None:
        """Index a child's first alert (again after it moved)."""
        entries = self._by_scope.setdefault(scope, [])
        entry = (first_seen, child_id)
        i = bisect.bisect_left(entries, entry)
        if i == len(entries) or entries[i] != entry:
            entries.insert(i, entry)

    def accompanied(self, scope: str, t: float, child_id: str, before_s: float,
                    first_seen_of: Callable[[str], float | None]) -> bool:
        """Whether another child of the scope starts within [t - before_s, t], as it stands now."""
        return any(other != child_id for other in self.starting(scope, t - before_s, t, first_seen_of))

    def starting(self, scope: str, lo: float, hi: float,
                 first_seen_of: Callable[[str], float | None]) -> Iterator[str]:
        """The children of the scope that start within [lo, hi] as they stand now (stale entries skipped)."""
        entries = self._by_scope.get(scope)
        if not entries:
            return
        i = bisect.bisect_left(entries, (lo, ""))
        while i < len(entries) and entries[i][0] <= hi:
            at, other = entries[i]
            if first_seen_of(other) == at:
                yield other
            i += 1

    def forget(self, scope: str, known: Callable[[str], bool]) -> None:
        """Drop the scope's oldest entries of children stage 2 no longer holds (an evicted group's), up to the
        first it holds: the index stays as long as the children stage 2 keeps. Only the evicted group's scope
        can have lost children, so the other scopes are not looked at."""
        entries = self._by_scope.get(scope)
        if entries is None:
            return
        cut = 0
        while cut < len(entries) and not known(entries[cut][1]):
            cut += 1
        if cut:
            del entries[:cut]
        if not entries:
            del self._by_scope[scope]

    def __len__(self) -> int:
        return sum(len(e) for e in self._by_scope.values())
