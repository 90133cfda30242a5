"""Every Kafka topic a deployment uses, with the configs it is created with, and the check of an existing cluster.

One place decides each topic's name, partitions, replication factor and configs (`topic_specs`): the worker
creates what is missing from it (`stream.worker.ensure_topics`), the tables name their changelogs with
`internal_topic_name`, and at start the topics that already existed are compared with it, so an operator who
pre-created them with replication 1 or without compaction is told which topic differs and how
(`differences`), instead of finding out when a broker is lost.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from stream.settings import Settings, TopicNames

__all__ = ["BROKER_EPOCH", "CHANGELOGS", "INSIGHT_CHANGELOGS", "NOTIFY_CHANGELOG", "NOTIFY_CONTROL", "STAGE2_CHANGELOG", "STAGE2_ROUTE", "TopicSpec", "changelog_name", "differences",
           "internal_topic_name", "topic_specs"]

CHANGELOGS: dict[str, str] = {
    "correlation-state": "alerts",  # stage-1 engine state (stream.pipeline)
    "ticket-sla": "tickets_raw",  # ticket SLA clocks (stream.tickets)
    "incident-sla": "incidents",  # incident acknowledgement clocks (stream.tickets)
}
"""Faust table name -> the TopicNames field whose partitions its changelog mirrors (partition = owner)."""

INSIGHT_CHANGELOGS: dict[str, str] = {
    "insight-incidents": "incidents",  # hourly incident aggregates (stream.insight)
    "insight-tickets": "tickets_triaged",  # hourly ticket and SLA aggregates (stream.insight)
}
"""The analytics store's tables, with `Settings.insight` on."""
STAGE2_CHANGELOG = "stage2-state"
STAGE2_ROUTE = "stage2-route"
NOTIFY_CHANGELOG = "notify-state"
NOTIFY_CONTROL = "notify-control"
BROKER_EPOCH = "broker-epoch"
"""One partition whose first record names the broker's epoch for the app (stream/recovery.py): a broker that lost
every topic holds another one (or none) after, which every worker sees, whoever re-created the topics."""
_RAW_FIELDS = ("alerts_raw", "tickets_raw", "deadletter")  # carry whole ingest bodies (deadletter: refused ones)


@dataclass(frozen=True)
class TopicSpec:
    """A topic as the deployment wants it: Kafka name, partitions, replication factor and topic configs."""

    name: str
    partitions: int
    replication: int
    config: dict[str, str] = field(default_factory=dict)
    internal: bool = False
    """Named after the app id and written only by the workers (changelogs, the stage-2 route)."""


def internal_topic_name(settings: Settings, name: str) -> str:
    """`<app_id>-<name>`: the Kafka name of an internal topic (`internal_topic_name(s, "stage2-route")`)."""
    return f"{settings.app_id}-{name}"


def changelog_name(settings: Settings, table: str) -> str:
    """Kafka name of a Faust table's changelog, `<app_id>-<table>-changelog`."""
    return internal_topic_name(settings, f"{table}-changelog")


def _common(settings: Settings) -> dict[str, str]:
    rf = settings.topic_replication_factor
    insync = settings.topic_min_insync_replicas or max(1, rf - 1)
    return {"min.insync.replicas": str(insync)}


def _deleting(settings: Settings, retention_key: str) -> dict[str, str]:
    seconds = settings.topic_retention[retention_key]
    return {"cleanup.policy": "delete", "retention.ms": str(int(seconds * 1000)) if seconds > 0 else "-1"}


def topic_specs(settings: Settings, *, internal: bool = True) -> list[TopicSpec]:
    """The pipeline's topics, then (with `internal`) the changelogs and, with stage 2 on, its route topic.

    Deleting topics keep records for `topic_retention`; changelogs are `cleanup.policy=compact` (a table is
    its latest value per key, restored from the changelog after a restart: deleting by age would lose it).
    Topics that carry whole ingest bodies allow records of `max_record_bytes`.
    """
    rf = settings.topic_replication_factor
    large = {"max.message.bytes": str(settings.max_record_bytes)}
    specs = [
        TopicSpec(getattr(settings.topics, f), settings.partitions_for(f), rf,
                  {**_common(settings), **_deleting(settings, f), **(large if f in _RAW_FIELDS else {})})
        for f in TopicNames.model_fields
    ]
    if not internal:
        return specs
    compact = {**_common(settings), "cleanup.policy": "compact"}
    tables = dict(CHANGELOGS)
    if settings.stage2:
        tables[STAGE2_CHANGELOG] = "incidents"
    if settings.notify_file is not None:
        tables[NOTIFY_CHANGELOG] = "incidents"
    if settings.insight:
        tables.update(INSIGHT_CHANGELOGS)
    specs += [TopicSpec(changelog_name(settings, table), settings.partitions_for(owner), rf, dict(compact), True)
              for table, owner in tables.items()]
    if settings.stage2:
        specs.append(TopicSpec(internal_topic_name(settings, STAGE2_ROUTE), settings.partitions_for("incidents"),
                               rf, {**_common(settings), **_deleting(settings, "stage2_route")}, True))
    if settings.notify_file is not None:  # acknowledgements, escalations and silences for the notify stage
        specs.append(TopicSpec(internal_topic_name(settings, NOTIFY_CONTROL), settings.partitions_for("incidents"),
                               rf, {**_common(settings), **_deleting(settings, "incidents")}, True))
    if settings.broker_epoch:  # kept for ever: its first record is the epoch, and must not age out
        specs.append(TopicSpec(internal_topic_name(settings, BROKER_EPOCH), 1, rf,
                               {**_common(settings), "cleanup.policy": "delete", "retention.ms": "-1"}, True))
    return specs


def differences(specs: Iterable[TopicSpec], replication: Mapping[str, int],
                configs: Mapping[str, Mapping[str, str]]) -> list[str]:
    """One line per topic whose replication factor or configs differ from its spec, naming each difference.

    `replication` and `configs` are what the cluster reports per topic name (topics it lacks are skipped);
    a config the cluster does not report at all is a difference too ("unset").
    """
    lines = []
    for spec in specs:
        if spec.name not in replication:
            continue
        found = [f"replication factor {replication[spec.name]} (want {spec.replication})"
                 if replication[spec.name] != spec.replication else ""]
        actual = configs.get(spec.name, {})
        found += [f"{key}={actual.get(key, 'unset')} (want {want})"
                  for key, want in sorted(spec.config.items()) if actual.get(key) != want]
        if any(found):
            lines.append(f"topic {spec.name!r} differs from the settings: {', '.join(f for f in found if f)}")
    return lines
