"""Topics as created: replication, min.insync.replicas, retention, compaction, record size; the start-up check."""

from __future__ import annotations

import logging
import uuid

import pytest

from stream.broker import EmbeddedBroker, create_topics_sync, describe_topics_sync
from stream.settings import Settings, TopicNames
from stream.topics import differences, topic_specs
from stream.worker import build_worker_app, check_topics, ensure_topics

DAY_MS = 24 * 3600 * 1000


def isolated(broker: EmbeddedBroker, **overrides: object) -> Settings:
    """Settings whose topic names and app id no other test on the session broker uses."""
    tag = uuid.uuid4().hex[:8]
    names = {f: f"{getattr(TopicNames(), f)}-{tag}" for f in TopicNames.model_fields}
    return Settings(broker=broker.url, app_id=f"topics-{tag}", topics=names, partitions=2, **overrides)


def test_specs_for_a_replicated_cluster() -> None:
    settings = Settings(topic_replication_factor=3, stage2=True, topic_retention={"alerts_raw": "1d"},
                        ingest_max_body_bytes=8_000_000)
    specs = {s.name: s for s in topic_specs(settings)}
    assert {s.replication for s in specs.values()} == {3}
    assert {s.config["min.insync.replicas"] for s in specs.values()} == {"2"}  # 3 - 1 unless set
    changelogs = [s for s in specs.values() if s.name.endswith("-changelog")]
    assert len(changelogs) == 6 and all(s.config["cleanup.policy"] == "compact" for s in changelogs)  # 2: insight
    assert sum(s.name.endswith("-changelog") for s in topic_specs(Settings(insight=False))) == 4
    assert all("retention.ms" not in s.config for s in changelogs)
    assert specs["alerts.raw"].config["retention.ms"] == str(DAY_MS)
    assert specs["incidents"].config["retention.ms"] == str(30 * DAY_MS)
    assert specs["alerts.raw"].config["max.message.bytes"] == str(settings.max_record_bytes)
    assert specs["aiops-correlator-stage2-route"].config["cleanup.policy"] == "delete"
    assert "aiops-correlator-stage2-route" not in {s.name for s in topic_specs(Settings(stage2=False))}


def test_changelog_names_are_the_tables_own() -> None:
    """The specs name exactly the changelogs and route topic the agents declare, so they are created right."""
    settings = Settings(stage2=True, app_id="names")
    app, _ = build_worker_app(settings)
    declared = {table.changelog_topic.get_topic_name() for table in app.tables.values()}
    internal = {s.name for s in topic_specs(settings) if s.internal}
    assert declared == internal - {"names-stage2-route", "names-broker-epoch"}
    assert "names-stage2-route" in {agent.channel.get_topic_name() for agent in app.agents.values()}


def test_differences_name_each_one() -> None:
    spec = topic_specs(Settings(topic_replication_factor=3))[0]
    actual = {**spec.config, "retention.ms": "3600000"}
    del actual["min.insync.replicas"]
    (line,) = differences([spec], {spec.name: 1}, {spec.name: actual})
    assert "'alerts.raw'" in line and "replication factor 1 (want 3)" in line
    assert "retention.ms=3600000 (want 259200000)" in line and "min.insync.replicas=unset (want 2)" in line
    assert differences([spec], {spec.name: 3}, {spec.name: spec.config}) == []
    assert differences([spec], {}, {}) == []  # a topic the cluster lacks is created, not compared


def test_topics_as_created_on_the_broker(broker: EmbeddedBroker) -> None:
    """Tansu reports topic configs (DescribeConfigs), so what the worker created is read back from the broker."""
    settings = isolated(broker, ingest_max_body_bytes=4_000_000)
    specs = topic_specs(settings)
    created = ensure_topics(settings)
    assert sorted(created) == sorted(s.name for s in specs)
    replication, configs = describe_topics_sync(broker.bootstrap, [s.name for s in specs])
    for spec in specs:
        assert replication[spec.name] == 1
        assert {k: configs[spec.name].get(k) for k in spec.config} == spec.config
    assert configs[settings.topics.alerts_raw]["max.message.bytes"] == str(4_000_000 + 64 * 1024)
    assert configs[f"{settings.app_id}-correlation-state-changelog"]["cleanup.policy"] == "compact"
    assert configs[settings.topics.incidents]["retention.ms"] == str(30 * DAY_MS)
    assert ensure_topics(settings) == []  # idempotent, and nothing differs


def test_existing_topics_that_differ_are_named(broker: EmbeddedBroker, caplog: pytest.LogCaptureFixture) -> None:
    """An operator's pre-created topics without compaction or at replication 1 give a warning per topic."""
    settings = isolated(broker)
    changelog = f"{settings.app_id}-correlation-state-changelog"
    create_topics_sync(broker.bootstrap, {changelog: 2, settings.topics.alerts: 2},
                       configs={settings.topics.alerts: {"retention.ms": "3600000"}})
    wanted = settings.model_copy(update={"topic_replication_factor": 3})
    with caplog.at_level(logging.WARNING, logger="stream.worker"):
        created = ensure_topics(settings)
    assert changelog not in created and settings.topics.alerts not in created
    warned = {r.getMessage().split("'")[1]: r.getMessage() for r in caplog.records}
    assert set(warned) == {changelog, settings.topics.alerts}
    assert "cleanup.policy=" in warned[changelog] and "(want compact)" in warned[changelog]
    assert "retention.ms=3600000 (want 259200000)" in warned[settings.topics.alerts]
    lines = check_topics(wanted, topic_specs(wanted))
    assert all("replication factor 1 (want 3)" in line for line in lines) and len(lines) == len(topic_specs(wanted))
