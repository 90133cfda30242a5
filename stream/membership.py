"""A worker outside its consumer group: its pages held, the absence reported, and the worker restarted when it does
not come back by itself (the rule: `correlator.membership`).

Every `broker_check_interval` the `GroupWatch` reads where the consumer stands in its group
(`stream.consumer.membership`: aiokafka's coordinator attributes, no call into the consumer's thread, which may be
the stuck part), counts a rejoin after a broker loss that has not begun as outside (`stream.recovery.Recovery`: the
group that assigned the partitions is gone), and whether the broker answered the broker watch's probes. From
the rule's standing:

- **held**: `trusted` is what `stream.stages.StageRunner` asks before a stage that decides pages (notify's folds
  and its tick) folds or ticks: outside for longer than `group_absence_hold`, a batch waits unread, and is given up
  unacknowledged when a rebalance begins or the worker stops (whoever owns its partitions then reads it again);
- **loud**: `aiops_group_outside_seconds`, a warning when pages are first held and every `REMIND_S` after, a line
  when the worker is back, and a `/readyz` reason (not ready) while its pages are held;
- **restarted**: outside for longer than `group_absence_exit` while the broker answered, the worker logs where
  aiokafka's coordination waits and exits with status 75 (EX_TEMPFAIL), for its supervisor (Kubernetes, compose's
  `restart:`, systemd's `Restart=on-failure`) to start it again. Faust has no way to replace the consumer of a
  running app: its consumer thread, fetcher, table recovery and assignor all hold the aiokafka consumer and its
  assignment; a new process joins from scratch and restores its tables from the changelogs, which is the path Faust
  makes reliable. The exit is immediate (`os._exit` after the logs are flushed), not Faust's graceful stop: that
  stop writes a last checkpoint of partitions the group gave to another member into their changelogs, and its
  consumer's close awaits the coordinator that never answers (rejoin41's worker hung at "Wait for streams..." after
  its SIGTERM). Nothing is lost by it: what the worker read and did not acknowledge is read again by the partitions'
  owners, and its held pages were never decided.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Callable
from typing import Any

from mode import Service

from correlator import metrics
from correlator.membership import AbsencePolicy, GroupAbsence, Membership, Standing
from stream.app import App
from stream.consumer import membership
from stream.ingest import Ingest, ReadyState
from stream.recovery import BrokerWatch
from stream.settings import Settings

__all__ = ["EXIT_OUTSIDE_GROUP", "GroupWatch", "exit_now", "install_group_watch"]

log = logging.getLogger(__name__)

EXIT_OUTSIDE_GROUP = 75
"""The worker's exit status when it restarts itself (EX_TEMPFAIL: a temporary failure, try again)."""
REMIND_S = 30.0
"""While pages are held, the warning is repeated this often."""


def exit_now(code: int) -> None:
    """Flush the logs and end the process at once with `code` (no graceful stop: see the module docstring)."""
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


class GroupWatch(Service):
    """Looks at the worker's group membership every `broker_check_interval` and acts on `GroupAbsence`'s standing."""

    def __init__(self, app: App, settings: Settings, broker: BrokerWatch, *,
                 exit: Callable[[int], None] = exit_now, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.app = app
        self.settings = settings
        self.broker = broker
        self.exit_process = exit
        self.rule = GroupAbsence(AbsencePolicy(settings.group_absence_hold, settings.group_absence_exit))
        self._held_at: float | None = None
        """When pages were first held in this absence, or last reminded of (None: not held)."""
        metrics.GROUP_OUTSIDE.set(0)

    def trusted(self) -> bool:
        """Whether this worker may decide pages now (the standing of the last look)."""
        return self.rule.standing.trusted

    def facts(self) -> Membership:
        """Where the worker stands in its group: the consumer's membership, outside while a rejoin after a broker loss
        has not begun (the group that assigned its partitions is gone), and whether the broker answered the watch's
        last probe."""
        member, state = membership(self.app.consumer)
        # a rejoin begun since the loss is judged by the consumer alone: its table recovery is no absence
        if member and self.broker.recovery.lost and not getattr(self.app, "rebalancing", False):
            member, state = False, f"rejoining after the broker lost its topics ({state})"
        return Membership(member, state, self.broker.answered)

    async def look(self, now: float) -> Standing:
        """One look: the standing, its gauge, its log lines, and the exit when it calls for one."""
        standing = self.rule.observe(self.facts(), now)
        metrics.GROUP_OUTSIDE.set(standing.outside_s)
        if standing.trusted:
            if self._held_at is not None:
                log.warning("back in its consumer group after %.0f s outside (%s): pages are decided again",
                            standing.ended_s, standing.state)
            self._held_at = None
        elif self._held_at is None or now - self._held_at >= REMIND_S:
            first = self._held_at is None
            self._held_at = now
            log.warning("%s its consumer group for %.0f s (%s; %.0f s of it with the broker answering, a restart "
                        "after %s): this worker's pages are held, its input left unread for whoever owns the "
                        "partitions", "outside" if first else "still outside", standing.outside_s, standing.state,
                        standing.answered_s, f"{self.settings.group_absence_exit:g} s"
                        if self.settings.group_absence_exit else "never (group_absence_exit 0)")
        if standing.recover:
            await self._restart(standing)
        return standing

    async def _restart(self, standing: Standing) -> None:
        waits = await self.broker.coordination_waits()
        log.critical("outside its consumer group for %.0f s, %.0f s of it with the broker answering (%s): its group "
                     "coordination is stuck; exiting with status %d for its supervisor to restart it (a new process "
                     "joins from scratch; the group's other members own its partitions meanwhile). It waits in: %s",
                     standing.outside_s, standing.answered_s, standing.state, EXIT_OUTSIDE_GROUP, waits or "unknown")
        self.exit_process(EXIT_OUTSIDE_GROUP)

    async def check(self) -> ReadyState:
        """The watch's part of /readyz: not ready while pages are held."""
        standing = self.rule.standing
        detail = {"group_outside_s": round(standing.outside_s, 1)}
        if standing.trusted:
            return ReadyState(True, detail)
        return ReadyState(False, detail, (f"outside its consumer group for {standing.outside_s:.0f} s "
                                          f"({standing.state}): pages held",))

    @Service.task
    async def _watch(self) -> None:
        while not self.should_stop:
            try:
                await self.look(time.monotonic())
            except Exception:  # the watch must outlive any one failed look; the next one retries
                log.exception("group membership look failed")
            await self.sleep(self.settings.broker_check_interval)


def install_group_watch(app: App, settings: Settings, broker: BrokerWatch, ingest: Ingest) -> GroupWatch:
    """Run a `GroupWatch` with the app and make it part of `/readyz`."""
    watch = GroupWatch(app, settings, broker)
    app.add_dependency(watch)
    ingest.checks.append(watch.check)
    return watch
