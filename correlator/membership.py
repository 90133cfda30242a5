"""Whether a worker may still decide pages, given where it stands in its consumer group, and when it must recover.

A worker's notify decides pages from the state of the partitions its group assigned it. Outside the group (no group
coordinator known, a join not finished, a rejoin after a broker loss not done) that assignment is no longer one it
can trust: a group gives a member's partitions to the others once its session expires (10 s by default), and a broker
restarted empty forgets the group at once. Seen in a chaos soak (benchmarks/RESULTS.md, rejoin41): a worker whose
coordinator lookup stalled after a broker restart stayed outside its group for 240 s, kept folding its old
partitions while the other worker owned them, and its notify, which never read the new assignments, paged 27 lone
incidents.

The rule (pure: the facts and the clock passed in, `GroupAbsence.observe`):

- **trusted** (may decide pages): a member, or outside for at most `hold_after_s`. Beyond it pages are held, never
  dropped: the input stays unread and whoever owns the partitions folds it (this worker once back, or the member
  that took them). Holding costs nothing while the worker is outside for a rebalance it knows of (its agents are
  stopped then anyway) and delays pages by no more than the absence when it comes back by itself.
- **recover**: outside for longer than `recover_after_s` while the broker answered this worker's own probes. An
  outage of the broker is everyone's and waits: no restart would bring the group back sooner, and a restarting
  worker restores its tables again. An absence past it with the broker answering is this worker's alone: its
  group coordination is stuck, and a new process joins from scratch. 0: never.
- Facts that say nothing (the consumer not started yet) neither start nor end an absence.

`recover_after_s` must be longer than the longest rejoin a healthy group makes: after a broker restart in the
chaos soaks a member rejoined 5-8 s after its first failed heartbeat, and a join on Kafka may wait for the
slowest member up to the rebalance timeout (60 s in Faust).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["AbsencePolicy", "GroupAbsence", "Membership", "Standing"]


@dataclass(frozen=True, slots=True)
class Membership:
    """What the worker knows of its place in its group at one instant: a member (None: not known yet, the consumer
    not started), what it waits on when not (in words, for the log), and whether the broker answered its probes."""

    member: bool | None
    state: str = ""
    broker_answers: bool = True


@dataclass(frozen=True, slots=True)
class AbsencePolicy:
    """How long outside the group before pages are held (`hold_after_s`), and before the worker recovers
    (`recover_after_s`, counted only while the broker answers; 0: never)."""

    hold_after_s: float = 10.0
    recover_after_s: float = 90.0


@dataclass(frozen=True, slots=True)
class Standing:
    """The verdict at one instant: seconds outside the group (0: a member), of them the seconds the broker
    answered, whether the worker may decide pages, whether it must recover now, what it waits on, and how long the
    absence this look ended lasted (0: none ended)."""

    outside_s: float = 0.0
    answered_s: float = 0.0
    trusted: bool = True
    recover: bool = False
    state: str = ""
    ended_s: float = 0.0


class GroupAbsence:
    """The rule of the module docstring, observation after observation; `now` in seconds of any monotonic clock."""

    def __init__(self, policy: AbsencePolicy) -> None:
        self.policy = policy
        self.since: float | None = None
        """When the current absence began (None: a member)."""
        self.answered_s = 0.0
        """Seconds of the current absence during which the broker answered."""
        self.last_at: float | None = None
        self.last_answered = False
        """Whether the broker answered at the last look: only an interval it answered at both ends counts."""
        self.standing = Standing()

    def observe(self, facts: Membership, now: float) -> Standing:
        """The standing after one look at the facts."""
        last, self.last_at = self.last_at, now
        answered, self.last_answered = self.last_answered, facts.broker_answers
        if facts.member is None:  # nothing known: the absence (if any) neither starts nor ends
            if self.since is None:
                return self.standing
            return self._judge(facts.state or self.standing.state, now)
        if facts.member:
            ended = 0.0 if self.since is None else max(0.0, now - self.since)
            self.since, self.answered_s = None, 0.0
            self.standing = Standing(state=facts.state, ended_s=ended)
            return self.standing
        if self.since is None:
            self.since, last = now, None
        if facts.broker_answers and answered and last is not None:
            self.answered_s += max(0.0, now - last)
        return self._judge(facts.state, now)

    def _judge(self, state: str, now: float) -> Standing:
        assert self.since is not None
        outside = max(0.0, now - self.since)
        recover_after = self.policy.recover_after_s
        self.standing = Standing(
            outside_s=outside, answered_s=self.answered_s, trusted=outside <= self.policy.hold_after_s,
            recover=recover_after > 0 and self.answered_s > recover_after, state=state)
        return self.standing
