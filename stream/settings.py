"""Every knob of the streaming side in one frozen pydantic-settings object.

Values come, highest priority first, from keyword arguments (`Settings.from_args`, fed by CLI flags), then
environment variables prefixed `AIOPS_` (nested topic names as `AIOPS_TOPICS__ALERTS_RAW`), then the
defaults below, which are chosen to work on the embedded Tansu broker.
"""

from __future__ import annotations

import re
from pathlib import Path
from tempfile import gettempdir
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel, BeforeValidator, ConfigDict, Field, PositiveInt, SecretStr, field_validator, model_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from correlator.config import parse_duration

__all__ = ["DEFAULT_TIER_SLA", "Duration", "Settings", "TopicNames", "parse_duration", "split_broker_urls"]

Duration = Annotated[float, BeforeValidator(parse_duration), Field(ge=0)]
"""Seconds as a float; accepts "10m", "30s", "4h" or a plain number of seconds."""


def split_broker_urls(value: Any) -> tuple[str, ...]:
    """Normalize `kafka://h1:9092,h2` (or `;`-separated, or a list of those) to one URL per host.

    A host without a scheme inherits the scheme of the URL before it, and `kafka` when there is none,
    so `--broker kafka://h1,h2` means two Kafka hosts, as Faust and Kafka users write it.
    """
    items = [value] if isinstance(value, str) else list(value)
    scheme = "kafka"
    urls: list[str] = []
    for item in items:
        for part in re.split(r"[,;\s]+", str(item).strip()):
            if not part:
                continue
            if "://" in part:
                scheme, _, part = part.partition("://")
            urls.append(f"{scheme}://{part.rstrip('/')}")
    if not urls:
        raise ValueError("at least one broker URL is required")
    return tuple(urls)


class TopicNames(BaseModel):
    """Names of the pipeline's topics (see DESIGN.md, "Topics")."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    alerts_raw: str = "alerts.raw"
    alerts: str = "alerts"
    incidents: str = "incidents"
    tickets_raw: str = "tickets.raw"
    tickets_triaged: str = "tickets.triaged"
    tickets_labels: str = "tickets.labels"
    deadletter: str = "deadletter"


LogLevel = Literal["debug", "info", "warning", "error", "critical"]

DEFAULT_TIER_SLA: dict[str, float] = {"L1": 240 * 60.0, "L2": 60 * 60.0, "L3": 15 * 60.0}
"""Seconds per tier: DESIGN.md's sev3/sev2/sev1 SLAs on the tiers those severities route to."""


class Settings(BaseSettings):
    """Configuration of a worker, the embedded broker and the correlation engine."""

    model_config = SettingsConfigDict(
        env_prefix="AIOPS_", env_nested_delimiter="__", frozen=True, extra="forbid"
    )

    broker: Annotated[tuple[str, ...], NoDecode] = Field(
        default=("kafka://127.0.0.1:9092",), description="Kafka bootstrap URLs, e.g. kafka://h1:9092,h2:9092"
    )
    app_id: str = Field(default="aiops-correlator", min_length=1, description="Faust app id = consumer group")
    topics: TopicNames = Field(default_factory=TopicNames)
    partitions: PositiveInt = Field(default=4, description="partitions of every topic unless overridden")
    topic_partitions: dict[str, PositiveInt] = Field(
        default_factory=dict, description="per-topic override, keyed by TopicNames field (alerts_raw, ...)"
    )
    web_port: int = Field(default=6066, ge=0, le=65535)
    role: Literal["all", "ingest"] = Field(
        default="all", description="all: ingest, agents and views in one process (the default); ingest: the HTTP "
        "ingest, health and /metrics only, a stateless front that scales apart from the agents")
    fetch_max_wait_ms: int = Field(default=100, ge=0, description="consumer fetch long-poll; Faust hard-codes 1500")
    producer_batch_bytes: int = Field(
        default=512 * 1024, ge=16384, le=1_000_000, description="largest record batch the producer builds. "
        "aiokafka sends one batch per partition per request and keeps one request in flight per broker, so "
        "this, not the network, bounds how fast one partition's changelog is written (Faust's default, 16 KiB, "
        "made a commit of a few MB take hundreds of round trips); at most the producer's 1 MB request limit")
    broker_session_timeout: Duration = 10.0
    log_level: LogLevel = "info"
    data_dir: Path = Field(default_factory=lambda: Path(gettempdir()) / "aiops-correlator")

    changelog_sync_marker: bool = Field(
        default=True, description="after each state write, a one-record changelog batch so that Tansu 0.6.0 "
        "reports the true end offset and a restarted worker recovers every write; off on a real Kafka")

    step_bytes: int = Field(
        default=256 * 1024, ge=0, description="most record bytes the normalize and correlate agents parse in "
        "one step; a batch beyond it is taken in several. Bounds the worker's memory in a catch-up, where a "
        "batch of 1,000 records can hold hundreds of thousands of alerts (0: no bound)")

    checkpoint_interval: Duration = Field(
        default=1.0, ge=0, description="how often the correlate agent writes its changed keys and progress to "
        "the changelog; input read since the last checkpoint is acknowledged only then, so a crash re-reads "
        "at most this much (0: at every batch, one round trip each)")

    idle_flush: Duration = Field(default=1.0, description="a partition idle this long releases held alerts "
                                 "and publishes throttled updates (event time does not move)")
    idle_advance: Duration = Field(default=10.0, description="a partition idle this long lets event time follow "
                                   "the wall clock, so quiet incidents still close and resolve")

    # Correlation knobs, handed to the engine as plain values.
    window: Duration = 600.0
    allowed_lateness: Duration = 0.5
    max_incident_lifetime: Duration = 4 * 3600.0
    max_incident_alerts: PositiveInt = 5000
    update_interval: Duration = 5.0
    resolve_hold: Duration = 60.0
    stale_after: Duration = 24 * 3600.0

    # Stage 2 (stream/stage2_agent.py): groups stage-1 incidents into causes, parents on `incidents`.
    stage2: bool = Field(default=False, description="run the stage-2 agents; off by default because they add "
                         "parent and assignment records to `incidents`, which readers must then tell apart")
    stage2_topology: Path | None = Field(default=None, description="topology file (JSON or YAML), re-read when "
                                         "its mtime changes; without one stage 2 relates incidents by labels")
    stage2_gap: Duration = Field(default=120.0, description="largest quiet time between a cause's alerts and "
                                 "a new related incident")
    stage2_hops: int = Field(default=2, ge=0, le=3, description="topology edges allowed between related entities")

    # Tickets: the confidence gate, each tier's SLA, the SLA timer (see stream/tickets.py).
    triage_threshold: float = Field(default=0.5, ge=0.0, le=1.0, description="below it a ticket goes to "
                                    "human review and is never auto-routed")
    triage_plugin: str | None = Field(default=None, description="optional classifier `package.module:factory`; "
                                      "the rules answer when it fails or times out")
    tier_sla: dict[str, Duration] = Field(
        default_factory=lambda: dict(DEFAULT_TIER_SLA), description="SLA per tier, e.g. "
        '{"L1": "4h", "L2": "1h", "L3": "15m"}; tiers left out keep their default')
    sla_check_interval: Duration = Field(default=1.0, gt=0, description="how often the SLA timer looks for "
                                         "breaches on the partitions this worker owns")
    sla_retention: Duration = Field(default=24 * 3600.0, description="resolved tickets and closed incident "
                                    "clocks stay in the SLA tables (and the views) this long, then go")

    # HTTP ingest (stream/ingest.py): refusal limits and the ingest producer's batching.
    ingest_max_body_bytes: PositiveInt = Field(
        default=1_000_000, description="larger bodies get 413; one body is one record, so keep it within the "
        "broker's message.max.bytes (Kafka's default 1,048,588)")
    ingest_token: SecretStr | None = Field(
        default=None, description="bearer token every POST /ingest/* must carry; unset or empty: no check")
    ingest_linger: Duration = Field(
        default=0.005, description="the ingest producer waits this long for concurrent requests to share a batch")
    ingest_batch_bytes: PositiveInt = Field(
        default=1_000_000, description="ingest producer batch size per partition (aiokafka's 16 KiB default holds "
        "less than one 100-alert webhook)")
    ingest_send_timeout: Duration = Field(
        default=5.0, description="no broker ack within this long: 503 (the record's batch has expired by then)")

    # Broker faults (stream/recovery.py): the watch behind /readyz that re-creates lost topics.
    broker_check_interval: Duration = Field(
        default=1.0, gt=0, description="how often the worker asks the broker for its topics: how soon a broker "
        "outage, or a broker back without the topics (the embedded one keeps data in memory), is noticed")
    recreate_topics: bool = Field(
        default=True, description="re-create the topics this worker creates at start (the pipeline's and Faust's "
        "changelogs) when the broker comes back without them; off where an operator owns topic creation")

    # Kafka security (stream/security.py): applied to the Faust app (broker_credentials), the ingest producer
    # and the topic admin. PLAINTEXT is the embedded broker's; a managed cluster is usually SASL_SSL.
    broker_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    broker_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] = "PLAIN"
    broker_sasl_username: str | None = None
    broker_sasl_password: SecretStr | None = None
    broker_ssl_cafile: Path | None = Field(default=None, description="CA bundle (PEM) the broker's certificate "
                                           "must chain to; unset: the system's trust store")
    broker_ssl_certfile: Path | None = Field(default=None, description="client certificate (PEM) for mutual TLS")
    broker_ssl_keyfile: Path | None = Field(default=None, description="its private key (PEM)")
    broker_ssl_check_hostname: bool = True

    # Metrics (correlator/metrics.py, stream/observe.py).
    metrics: bool = Field(default=True, description="update Prometheus metrics; off only to measure their cost "
                          "(/metrics then serves zeros)")
    metrics_interval: Duration = Field(default=5.0, gt=0, description="how often the worker recomputes its "
                                       "periodic gauges: noise reduction, consumer lag, open incidents by service")
    metrics_top_services: PositiveInt = Field(default=20, description="services with their own series in "
                                              'aiops_incidents_open_by_service; the rest are summed as "other"')

    @field_validator("broker", mode="before")
    @classmethod
    def _split_broker(cls, value: Any) -> tuple[str, ...]:
        return split_broker_urls(value)

    @field_validator("ingest_token", mode="before")
    @classmethod
    def _empty_token_is_none(cls, value: Any) -> Any:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("log_level", mode="before")
    @classmethod
    def _lower_level(cls, value: Any) -> Any:
        level = value.lower() if isinstance(value, str) else value
        return "warning" if level == "warn" else level

    @field_validator("tier_sla")
    @classmethod
    def _known_tiers(cls, value: dict[str, float]) -> dict[str, float]:
        unknown = set(value) - set(DEFAULT_TIER_SLA)
        if unknown:
            raise ValueError(f"unknown tiers in tier_sla: {sorted(unknown)} (tiers: {sorted(DEFAULT_TIER_SLA)})")
        if any(seconds <= 0 for seconds in value.values()):
            raise ValueError("an SLA must be longer than zero")
        return {**DEFAULT_TIER_SLA, **value}

    @field_validator("topic_partitions")
    @classmethod
    def _known_topics(cls, value: dict[str, int]) -> dict[str, int]:
        unknown = set(value) - set(TopicNames.model_fields)
        if unknown:
            raise ValueError(f"unknown topics in topic_partitions: {sorted(unknown)}")
        return value

    @model_validator(mode="after")
    def _sasl_needs_credentials(self) -> Settings:
        if self.broker_security_protocol.startswith("SASL") and not (
                self.broker_sasl_username and self.broker_sasl_password):
            raise ValueError(f"{self.broker_security_protocol} needs broker_sasl_username and broker_sasl_password")
        return self

    @classmethod
    def from_args(cls, **overrides: Any) -> Settings:
        """Settings with CLI flags on top of env and defaults; flags left unset (None) are ignored."""
        return cls(**{name: value for name, value in overrides.items() if value is not None})

    @property
    def bootstrap_servers(self) -> str:
        """The broker URLs as aiokafka wants them: `h1:9092,h2:9092`."""
        return ",".join(_host_port(url) for url in self.broker)

    def partitions_for(self, topic: str) -> int:
        """Partition count of a topic, by TopicNames field name (`alerts_raw`, `incidents`, ...)."""
        if topic not in TopicNames.model_fields:
            raise KeyError(topic)
        return self.topic_partitions.get(topic, self.partitions)

    def topic_plan(self) -> dict[str, int]:
        """Every pipeline topic's Kafka name and partition count, for `stream.broker.create_topics`."""
        return {getattr(self.topics, field): self.partitions_for(field) for field in TopicNames.model_fields}


def _host_port(url: str, default_port: int = 9092) -> str:
    hostport = url.partition("://")[2] or url
    return hostport if ":" in hostport.rsplit("]", 1)[-1] else f"{hostport}:{default_port}"
