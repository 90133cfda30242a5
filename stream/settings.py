"""Every knob of the streaming side in one frozen pydantic-settings object.

Values come, highest priority first, from keyword arguments (`Settings.from_args`, fed by CLI flags that
`stream.flags` generates from the fields below), then environment variables prefixed `AIOPS_` (nested topic
names as `AIOPS_TOPICS__ALERTS_RAW`), then the TOML or YAML file named by `config_file` (`--config FILE` or
`AIOPS_CONFIG_FILE`), then the defaults below, which are chosen to work on the embedded Tansu broker.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from tempfile import gettempdir
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import (
    BaseModel, BeforeValidator, ConfigDict, Field, PositiveInt, SecretStr, field_validator, model_validator,
)
from pydantic_settings import (
    BaseSettings, InitSettingsSource, NoDecode, PydanticBaseSettingsSource, SettingsConfigDict,
    TomlConfigSettingsSource, YamlConfigSettingsSource,
)

from correlator.config import DEFAULT_CONFIG, CorrelationConfig, parse_duration
from correlator.eventtime import TimeGuard
from correlator.notify.state import NotifyPolicy
from correlator.stage2 import GroupingConfig
from stream.derived_settings import DerivedSettings, SettingValueError, derive
from stream.notify.files import read_notify

__all__ = [
    "ConfigFileError",
    "DEFAULT_RETENTION",
    "DEFAULT_TIER_SLA",
    "RECORD_OVERHEAD",
    "STAGE2_ALIASES",
    "Duration",
    "GroupingSettings",
    "NotifyPolicySettings",
    "Settings",
    "TopicNames",
    "parse_duration",
    "split_broker_urls",
    "split_named_tokens",
]

Duration = Annotated[float, BeforeValidator(parse_duration), Field(ge=0)]
"""Seconds as a float; accepts "10m", "30s", "4h" or a plain number of seconds."""

STAGE2_ALIASES: dict[str, str] = {"stage2_gap": "gap_s", "stage2_hops": "max_hops", "stage2_burst": "burst_s",
                                  "stage2_merge_window": "merge_window_s"}
"""Settings older than `grouping` and the GroupingConfig field each sets."""

if TYPE_CHECKING:
    GroupingSettings = DerivedSettings
    NotifyPolicySettings = DerivedSettings
else:
    GroupingSettings = derive(
        GroupingConfig, seconds=Duration, fixed=("prompt_pairs",),  # set from stage2_lone_causes
        doc="Stage 2's grouping rules (correlator/stage2/config.py, GroupingConfig).")
    NotifyPolicySettings = derive(
        NotifyPolicy, seconds=Duration,
        fixed=("page_causes", "cause_wait_s", "retention_s", "lone_causes", "stage2_partitions", "source_of"),
        doc="The notify fold's rules (correlator/notify/state.py, NotifyPolicy).")


def split_named_tokens(value: str) -> dict[str, str]:
    """`alice=s3cret,bob=t0k` (commas or whitespace between pairs) to {"alice": "s3cret", "bob": "t0k"}.

    A JSON object is accepted too. A pair without `=` is refused with its position, never guessed at: a token
    taken for a name would be written into the logs as an actor.
    """
    text = value.strip()
    if text.startswith("{"):
        loaded = json.loads(text)
        if not isinstance(loaded, dict):
            raise ValueError("expected name=token pairs or a JSON object")
        return {str(k): str(v) for k, v in loaded.items()}
    pairs: dict[str, str] = {}
    for i, part in enumerate(p for p in re.split(r"[,\s]+", text) if p):
        name, sep, token = part.partition("=")
        if not sep or not name or not token:
            raise ValueError(f"pair {i + 1}: expected name=token")
        if name in pairs:
            raise ValueError(f"pair {i + 1}: the name {name!r} is given twice")
        pairs[name] = token
    return pairs


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

RECORD_OVERHEAD = 64 * 1024
"""Headroom above the ingest body limit for one record's batch and record headers and key."""

_DAY = 24 * 3600.0
DEFAULT_RETENTION: dict[str, float] = {
    "alerts_raw": 3 * _DAY, "alerts": 3 * _DAY, "stage2_route": 3 * _DAY,  # re-read only after a crash
    "incidents": 30 * _DAY, "tickets_raw": 30 * _DAY, "tickets_triaged": 30 * _DAY, "deadletter": 30 * _DAY,
    "tickets_labels": 365 * _DAY,  # labelled examples for the classifier: kept a year
}
"""Seconds each deleting topic keeps its records (keys: TopicNames fields and stage2_route; see deploy/README.md)."""

DEFAULT_TIER_SLA: dict[str, float] = {"L1": 240 * 60.0, "L2": 60 * 60.0, "L3": 15 * 60.0}
"""Seconds per tier: DESIGN.md's sev3/sev2/sev1 SLAs on the tiers those severities route to."""


class Settings(BaseSettings):
    """Configuration of a worker, the embedded broker and the correlation engine."""

    # hide_input_in_errors: a refused setting must not print what was given, which may be a token or password
    model_config = SettingsConfigDict(
        env_prefix="AIOPS_", env_nested_delimiter="__", frozen=True, extra="forbid", hide_input_in_errors=True
    )

    config_file: Path | None = Field(
        default=None, description="a TOML or YAML file of settings, keys as the field names here (topics as a "
        "table); flags and AIOPS_* variables win over it")
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
    web_url: str | None = Field(default=None, description="this worker's URL as the other workers reach it, to "
                                "forward an action to the owner of its item (unset: http://<hostname>:<web_port>)")
    console: bool = Field(default=True, description="fold the cluster's incidents, tickets and silences into a read "
                          "model (read without a consumer group) and serve the web console at /")
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
    table_standby_replicas: int = Field(
        default=0, ge=0, description="copies of each table partition other workers keep up to date (Faust's "
        "table_standby_replicas; its TABLE_STANDBY_REPLICAS variable is not read). 0: no worker reads the others' "
        "changelogs (two workers: -20% CPU per alert); a successor restores a dead worker's tables from their "
        "changelogs, which it does with standbys too, the stores being in memory. 1: Faust's default, this "
        "project's until session 38")
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

    deadletter_max_bytes: int = Field(
        default=900_000, ge=1024, le=990_000, description="largest record (key + value) dead-lettered whole; a "
        "larger one goes as a bounded reference (its first deadletter_head_bytes, original size, sha256). Below "
        "the producer's 1 MB request limit, with room for the headers")
    deadletter_head_bytes: int = Field(
        default=64 * 1024, ge=0, description="bytes of a too-large record's value (and key) a bounded reference "
        "keeps, for an operator to see what it was")

    idle_flush: Duration = Field(default=1.0, description="a partition idle this long releases held alerts "
                                 "and publishes throttled updates (event time does not move): what a lone alert "
                                 "waits before its incident shows; lower is sooner, but then a shorter pause in "
                                 "the input already releases what is held, and older alerts after it arrive late")
    idle_advance: Duration = Field(default=10.0, description="a partition idle this long lets event time follow "
                                   "the wall clock, so quiet incidents still close and resolve")

    # Correlation knobs, handed to the engine as plain values.
    scope_labels: tuple[str, ...] = Field(
        default=("cluster", "environment", "env", "region"), description="labels whose values bound correlation "
        "(part of every key; no incident or cause holds two scopes); add namespace here to bound by it too")
    window: Duration = Field(default=600.0, description="the longest quiet gap an incident bridges (and the "
                             "tumbling window its id is named after)")
    window_mode: Literal["quiet-gap", "continuation", "tumbling"] = Field(
        default="quiet-gap", description="quiet-gap: an incident ends after a pause long for its own alert rate "
        "(min_gap .. window); continuation: after a pause of window; tumbling: at the window's end")
    min_gap: Duration = Field(default=DEFAULT_CONFIG.min_gap_s, description="quiet-gap mode: the shortest pause "
                              "that ends an incident of two alerts or more")
    first_gap: Duration = Field(default=DEFAULT_CONFIG.first_gap_s, description="quiet-gap mode: the pause that "
                                "ends an incident holding one alert (nothing is known of its rate yet)")
    gap_factor: float = Field(default=DEFAULT_CONFIG.gap_factor, ge=0, description="quiet-gap mode: a pause this "
                              "many times the incident's mean interval between alerts ends it (between min_gap "
                              "and window)")
    background_factor: float = Field(default=DEFAULT_CONFIG.background_factor, ge=0, description="quiet-gap mode: "
                                     "cap an incident's gap at this many times the mean spacing of its key's "
                                     "incident onsets in the hour before (0: off, the default; see README)")
    dense_alerts: int = Field(default=DEFAULT_CONFIG.dense_alerts, ge=0, description="quiet-gap mode: once an "
                              "incident holds this many alerts its gap is at most dense_factor x its mean interval "
                              "(not below dense_floor), so a symptom failing again after a dense storm opens a new "
                              "incident; 0: off")
    dense_factor: float = Field(default=DEFAULT_CONFIG.dense_factor, ge=0, description="quiet-gap mode: see "
                                "dense_alerts")
    dense_floor: Duration = Field(default=DEFAULT_CONFIG.dense_floor_s, description="quiet-gap mode: the shortest "
                                  "gap dense_alerts allows")
    rejoin_flaps: bool = Field(default=DEFAULT_CONFIG.rejoin_flaps, description="quiet-gap mode: a member that "
                               "resolved and fires again (a flap) rejoins its open incident past that incident's gap, "
                               "within window of its last alert, instead of opening an incident of its own")
    allowed_lateness: Duration = Field(default=0.5, description="alerts wait this long in event time behind the "
                                       "newest alert, so any arrival order within it gives the same incidents; "
                                       "raise it for sources that deliver out of order, at that much more delay")
    max_incident_lifetime: Duration = 4 * 3600.0
    max_incident_alerts: PositiveInt = 5000
    update_interval: Duration = 5.0
    resolve_hold: Duration = 60.0
    stale_after: Duration = 24 * 3600.0
    max_future_skew: Duration = Field(default=300.0, description="an alert dated further ahead of its arrival is "
                                      "clamped to its arrival and labelled aiops_time_clamped (correlator/eventtime.py)")
    event_horizon: Duration = Field(default=7 * 86400.0, description="an alert dated further before its arrival is "
                                    "dead-lettered as too_old, unless still firing (correlated at its arrival, "
                                    "labelled aiops_firing_since); 0 turns the horizon off")

    # Stage 2 (stream/stage2_agent.py): groups stage-1 incidents into causes, parents on `incidents`.
    stage2: bool = Field(default=True, description="run the stage-2 agents: parents (causes) and assignments "
                         "on `incidents`, marked by the `aiops-stage: 2` header; every worker of a deployment "
                         "must run with the same value (false: stage 1 alone)")
    stage2_topology: Path | None = Field(default=None, description="topology file (JSON or YAML), re-read when "
                                         "its mtime changes; without one stage 2 relates incidents by labels")
    # Stage 2's rules: every GroupingConfig field (correlator/stage2/config.py) as grouping.<field>, derived from
    # the dataclass (stream/derived_settings.py), so a rule added there is a setting with no edit here.
    # `aiops replay` builds its grouping from these settings too (`grouping_config`), so stream and replay agree.
    grouping: GroupingSettings = Field(default_factory=lambda: GroupingSettings())
    # The names before `grouping`, kept with their meaning: each sets the grouping field it names (unset: that
    # field decides); both given and different is an error.
    stage2_gap: Duration | None = Field(default=None, description="the same as grouping.gap_s: largest quiet time "
                                        "between a cause's alerts and a new related incident (unset: "
                                        "grouping.gap_s)")
    stage2_hops: int | None = Field(default=None, ge=0, le=3, description="the same as grouping.max_hops: "
                                    "topology edges allowed between related entities (unset: grouping.max_hops)")
    stage2_burst: Duration | None = Field(default=None, description="the same as grouping.burst_s: onset "
                                          "proximity; an incident starting within this of a cause's latest start "
                                          "carries the cause on, and only such an incident joins by a shared host "
                                          "or a topology path alone (unset: grouping.burst_s)")
    stage2_merge_window: Duration | None = Field(default=None, description="the same as grouping.merge_window_s: "
                                                 "an incident related to several causes by a shared name merges "
                                                 "those that began within this of each other (0: never merge; "
                                                 "unset: grouping.merge_window_s)")
    stage2_lone_causes: bool = Field(default=False, description="publish a cause that groups one incident (false, "
                                     "the default: a parent is published once it groups two or more, an incident "
                                     "grouped with no other stands for its own cause, and stage 2 tells notify how "
                                     "far it has decided instead; correlator/stage2/publishing.py)")
    stage2_progress_interval: Duration = Field(default=0.25, ge=0, description="with stage2_lone_causes off, at "
                                               "most one progress record per stage-2 partition per this many "
                                               "seconds: how soon notify pages an incident no cause names (0: none, "
                                               "and such an incident waits notify_cause_wait)")
    reconcile_after_loss: bool = Field(default=True, description="after the broker lost its topics, each "
                                       "stage-1 partition says which incidents it holds open (a census on "
                                       "incidents) and notify closes the ones of that partition it holds open and "
                                       "the census does not name: their closes went with the broker (a page out is "
                                       "resolved, one never sent dropped; false: the old behaviour, they stay "
                                       "firing). Session 39's extra pages with it on were routing records lost in a "
                                       "rebalance the broker stop cut short, not the census's (benchmarks/RESULTS.md, "
                                       "census41)")
    stage2_restate_after_loss: bool = Field(default=True, description="after the broker lost its topics, say every "
                                            "open cause again (an updated event and its children's assignments) on "
                                            "the new incidents topic: notify may not have read them before the loss, "
                                            "and would page each child alone (false: the old behaviour)")
    restate_incidents_after_loss: bool = Field(default=False, description="after the broker lost its topics, "
                                               "each stage-1 partition says its open incidents again on incidents too, "
                                               "as last published (notify counts the ones it holds as repeats): notify "
                                               "never learns of an incident whose only event went with the broker "
                                               "unread. Off by default: in session 41's loaded quick chaos soaks "
                                               "(child42) notify failed to apply restated assignments after the "
                                               "restart and paged 134-255 such incidents alone")

    # The response stage (correlator/notify/, stream/notify/): receivers and routes, re-read when it changes.
    notify_file: Path | None = Field(default=None, description="the notify file (YAML or JSON): receivers "
                                     "(pagerduty, slack, webhook, alertmanager) and routes; re-read when its "
                                     "mtime or size changes, a bad new version keeping the old one; unset: "
                                     "nothing is paged")
    notify_tick: Duration = Field(default=1.0, gt=0, description="how often the notify timer re-reads the notify "
                                  "file and checks holds, silences, re-notify and rate-limit queues")
    notify_cause_wait: Duration = Field(default=30.0, ge=0, description="with stage 2 on, how long a stage-1 "
                                        "incident that no cause names waits before it pages on its own")
    notify_retention: Duration = Field(default=3600.0, gt=0, description="how long the notify stage remembers a "
                                       "resolved incident, and lists an ended silence, before purging it")
    # The notify fold's rule switches: every NotifyPolicy field (correlator/notify/state.py) but those set from
    # the settings above (stage2, notify_cause_wait, notify_retention, stage2_lone_causes, the partitions).
    notify_policy: NotifyPolicySettings = Field(default_factory=lambda: NotifyPolicySettings())

    # Tickets: the confidence gate, each tier's SLA, the SLA timer (see stream/tickets.py).
    triage_threshold: float = Field(default=0.5, ge=0.0, le=1.0, description="below it a ticket goes to "
                                    "human review and is never auto-routed")
    triage_plugin: str | None = Field(default=None, description="optional classifier `package.module:factory`; "
                                      "the rules answer when it fails or times out")
    triage_model_dir: Path | None = Field(default=None, description="directory of learned triage models "
                                          "(`aiops triage train --out DIR`): the newest is loaded on start and "
                                          "whenever a newer one appears; unset, or without the `learn` extra: "
                                          "the rules alone")
    triage_model_check: Duration = Field(default=10.0, gt=0, description="how often a worker looks for a newer "
                                         "model in --triage-model-dir")
    triage_llm_url: str | None = Field(default=None, description="base URL of an OpenAI-compatible chat endpoint "
                                       "for the shipped LLM plug-in (`--triage-plugin "
                                       "stream.llm_triage:factory`), e.g. http://localhost:8000/v1")
    triage_llm_model: str = Field(default="gpt-4o-mini", description="model name sent to the chat endpoint")
    triage_llm_key: str | None = Field(default=None, description="bearer token for the chat endpoint, if it "
                                       "needs one (better as AIOPS_TRIAGE_LLM_KEY than as a flag)")
    tier_sla: dict[str, Duration] = Field(
        default_factory=lambda: dict(DEFAULT_TIER_SLA), description="SLA per tier, e.g. "
        '{"L1": "4h", "L2": "1h", "L3": "15m"}; tiers left out keep their default')
    sla_check_interval: Duration = Field(default=1.0, gt=0, description="how often the SLA timer looks for "
                                         "breaches on the partitions this worker owns")
    incident_batch_within: Duration = Field(default=0.05, gt=0, le=5.0, description="how long the incident agent "
                                            "(SLA clocks, analytics hours: stream/tickets.py) gathers records of "
                                            "`incidents` into one batch: a clock starts at most this late; longer "
                                            "batches write each incident's clock and hour once per batch")
    insight: bool = Field(default=True, description="run the analytics store (stream/insight.py): hourly "
                          "aggregates of incidents and tickets, /trends, /summary, `aiops trends` and `aiops summary`")
    insight_retention: Duration = Field(default=90 * 86400.0, gt=0, description="how long the analytics store "
                                        "keeps its hourly aggregates (stream/insight.py), behind the newest time "
                                        "seen on each partition")
    api_url: str | None = Field(default=None, description="the worker's web API for `aiops trends`, `aiops "
                                "summary` and `aiops mcp` (default http://127.0.0.1:<web_port>)")
    api_token: SecretStr | None = Field(default=None, description="bearer token those commands present (an "
                                        "operator token to acknowledge or review through `aiops mcp`)")
    sla_retention: Duration = Field(default=24 * 3600.0, description="resolved tickets and closed incident "
                                    "clocks stay in the SLA tables (and the views) this long, then go")

    # HTTP ingest (stream/ingest.py): refusal limits and the ingest producer's batching.
    ingest_max_body_bytes: PositiveInt = Field(
        default=4 * 1024 * 1024, description="larger bodies get 413, which Alertmanager does not retry: the whole "
        "notification is lost. Sized with the sample's max_alerts (1000 alerts of up to 4 KiB, deploy/alertmanager/); "
        "one body is one record, so the raw topics get max.message.bytes to match")
    ingest_token: SecretStr | None = Field(
        default=None, description="one bearer token for POST /ingest/*, kept for existing deployments: the same "
        'as ingest_tokens="ingest=<token>"; unset or empty: none')
    ingest_tokens: Annotated[dict[str, SecretStr], NoDecode] = Field(
        default_factory=dict, description='bearer tokens for POST /ingest/* as name=token pairs, e.g. '
        '"alertmanager=s3cret,zabbix=..."; what a monitoring system holds (see stream/auth.py)')
    operator_tokens: Annotated[dict[str, SecretStr], NoDecode] = Field(
        default_factory=dict, description='bearer tokens of people (name=token pairs, "alice=...,bob=..."): every '
        "state-changing route but ingest (review approve/override, ticket resolve, incident ack) and every read; "
        "the name is recorded as the actor (acked_by, reviewer)")
    reader_tokens: Annotated[dict[str, SecretStr], NoDecode] = Field(
        default_factory=dict, description="bearer tokens (name=token pairs) that may read incidents, the review "
        "queue and the other views, and change nothing (a console, a dashboard)")

    # Admission control (correlator/backlog.py, stream/admission.py): the alert ingest sheds load with 503.
    admission_backlog_records: int = Field(
        default=20_000, ge=0, description="alert ingest answers 503 + Retry-After while the consumer group's "
        "backlog on alerts.raw + alerts is above this many records (0: no limit)")
    admission_backlog_seconds: Duration = Field(
        default=60.0, description="... or while that backlog needs more than this long to drain at the rate the "
        "group measurably drains it (or has not moved for this long); 0: no limit")
    admission_interval: Duration = Field(
        default=1.0, gt=0, description="how often the backlog is measured (two small requests to the broker)")
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
    broker_epoch: bool = Field(
        default=True, description="the agents' workers also read the broker's epoch (the first record of "
        "<app_id>-broker-epoch, written by the first worker to find it empty): another one means the broker lost "
        "every topic, even where another worker re-created them before this one saw them missing; off: only "
        "topics seen missing show a loss")

    # A worker outside its consumer group (stream/membership.py, correlator/membership.py).
    group_absence_hold: Duration = Field(
        default=10.0, description="a worker outside its consumer group (no coordinator, a join not finished, a "
        "rejoin after a broker loss not done) this long stops deciding pages: notify holds its input, unread, for "
        "whoever owns the partitions, until the worker is back (a rejoin after a broker restart took 5-8 s in the "
        "chaos soaks; the group gives a silent member's partitions away after broker_session_timeout)")
    group_absence_exit: Duration = Field(
        default=90.0, description="outside its group this long while the broker answers its probes, the worker "
        "exits with status 75 for its supervisor to restart it: its group coordination is stuck, and a new process "
        "joins from scratch (longer than a join waits for a slow member, Faust's 60 s rebalance timeout); 0: never, "
        "hold and report only")

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
                                              'aiops_incidents_open; the rest are summed as "other"')

    # Log output (stream/logs.py).
    log_format: Literal["plain", "json"] = Field(
        default="plain", description="plain: text lines for a terminal; json: one JSON object per line (time, "
        "level, logger, message, exception) for a log pipeline")

    # Kafka topics in production (stream/topics.py): replication, durability and retention, applied when the
    # worker creates a topic and compared with an existing cluster's at start (a warning names each difference).
    topic_replication_factor: PositiveInt = Field(
        default=1, description="replicas of every topic and changelog the worker creates; 1 suits the embedded "
        "broker only: use 3 on a real cluster, or one lost broker loses incidents, SLA clocks and state")
    topic_min_insync_replicas: PositiveInt | None = Field(
        default=None, description="min.insync.replicas of every topic (acks=all writes fail below it); unset: "
        "the replication factor minus one, at least 1 (2 of 3)")
    topic_retention: dict[str, Duration] = Field(
        default_factory=lambda: dict(DEFAULT_RETENTION), description='retention.ms per topic, keyed by topic '
        'field, e.g. {"alerts_raw": "1d"}; 0 keeps forever; topics left out keep their default (3d for alerts_raw, '
        "alerts and stage2_route, 30d for the rest); changelogs are compacted, never deleted by age")

    @classmethod
    def settings_customise_sources(
        cls, settings_cls: type[BaseSettings], init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource, dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Flags (init), then the environment, then the `config_file` named by a flag or AIOPS_CONFIG_FILE."""
        assert isinstance(init_settings, InitSettingsSource)
        named = init_settings.init_kwargs.get("config_file") or os.environ.get("AIOPS_CONFIG_FILE") or None
        sources = (init_settings, env_settings, dotenv_settings, file_secret_settings)
        return sources if named is None else (*sources, config_file_source(settings_cls, Path(named)))

    @field_validator("broker", mode="before")
    @classmethod
    def _split_broker(cls, value: Any) -> tuple[str, ...]:
        return split_broker_urls(value)

    @field_validator("ingest_token", mode="before")
    @classmethod
    def _empty_token_is_none(cls, value: Any) -> Any:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("ingest_tokens", "operator_tokens", "reader_tokens", mode="before")
    @classmethod
    def _split_named_tokens(cls, value: Any) -> Any:
        return split_named_tokens(value) if isinstance(value, str) else value

    @model_validator(mode="after")
    def _tokens_are_distinct(self) -> Settings:
        seen: dict[str, str] = {}
        for role, tokens in self.role_tokens().items():
            for name, token in tokens.items():
                secret = token.get_secret_value()
                if not name.strip() or not secret.strip():
                    raise ValueError(f"{role} tokens: a name and a token are both required ({name!r})")
                if secret in seen:
                    # one secret, two identities: the actor and the role it acts in would be a guess
                    raise ValueError(f"the same token is given for {seen[secret]} and {role} {name}")
                seen[secret] = f"{role} {name}"
        return self

    def role_tokens(self) -> dict[str, dict[str, SecretStr]]:
        """Every configured bearer token by role ("ingest", "operator", "reader") and name; the single
        `ingest_token` of older deployments is the ingest token named "ingest"."""
        ingest = dict(self.ingest_tokens)
        if self.ingest_token is not None:
            ingest.setdefault("ingest", self.ingest_token)
        return {"ingest": ingest, "operator": dict(self.operator_tokens), "reader": dict(self.reader_tokens)}

    @field_validator("notify_file")
    @classmethod
    def _notify_file_usable(cls, value: Path | None) -> Path | None:
        if value is not None:
            read_notify(value)  # a NotifyFileError is a ValueError: one line naming the file, place and reason
        return value

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

    @field_validator("topic_retention")
    @classmethod
    def _known_retention_topics(cls, value: dict[str, float]) -> dict[str, float]:
        unknown = set(value) - set(DEFAULT_RETENTION)
        if unknown:
            raise ValueError(f"unknown topics in topic_retention: {sorted(unknown)} (topics: {sorted(DEFAULT_RETENTION)})")
        return {**DEFAULT_RETENTION, **value}

    @model_validator(mode="after")
    def _insync_within_replicas(self) -> Settings:
        if (self.topic_min_insync_replicas or 1) > self.topic_replication_factor:
            raise ValueError(f"topic_min_insync_replicas {self.topic_min_insync_replicas} is above "
                             f"topic_replication_factor {self.topic_replication_factor}: every acks=all write "
                             "would fail")
        return self

    @model_validator(mode="after")
    def _deadletter_reference_fits(self) -> Settings:
        if 2 * self.deadletter_head_bytes > self.deadletter_max_bytes:
            raise ValueError("deadletter_head_bytes (kept of a value and of a key) must be at most half of "
                             "deadletter_max_bytes, so a bounded reference always fits")
        return self

    @model_validator(mode="after")
    def _sasl_needs_credentials(self) -> Settings:
        if self.broker_security_protocol.startswith("SASL") and not (
                self.broker_sasl_username and self.broker_sasl_password):
            raise ValueError(f"{self.broker_security_protocol} needs broker_sasl_username and broker_sasl_password")
        return self

    @model_validator(mode="after")
    def _correlation_rules_agree(self) -> Settings:
        self.correlation_config()  # the window settings together through CorrelationConfig's own checks
        return self

    @model_validator(mode="after")
    def _stage2_aliases_agree(self) -> Settings:
        for alias, field in STAGE2_ALIASES.items():
            given = getattr(self, alias)
            if given is not None and field in self.grouping.model_fields_set and given != getattr(self.grouping, field):
                raise SettingValueError(f"{alias} ({given:g}) and grouping.{field} ({getattr(self.grouping, field):g}) "
                                        "are the same setting: give one of them", (alias,), ("grouping", field))
        self.grouping_config()  # the aliases' values through GroupingConfig's own checks
        return self

    def correlation_config(self) -> CorrelationConfig:
        """Stage 1's rules (windows, limits, the time guard) as the worker and `aiops replay` run them."""
        return CorrelationConfig(
            window_s=self.window, allowed_lateness_s=self.allowed_lateness,
            max_lifetime_s=self.max_incident_lifetime, max_alerts=self.max_incident_alerts,
            update_interval_s=self.update_interval, resolve_hold_s=self.resolve_hold,
            stale_after_s=self.stale_after, mode=self.window_mode, min_gap_s=self.min_gap,
            first_gap_s=self.first_gap, gap_factor=self.gap_factor, background_factor=self.background_factor,
            dense_alerts=self.dense_alerts, dense_factor=self.dense_factor, dense_floor_s=self.dense_floor,
            rejoin_flaps=self.rejoin_flaps,
            time_guard=TimeGuard(max_future_skew_s=self.max_future_skew, horizon_s=self.event_horizon or None),
        )

    def grouping_config(self) -> GroupingConfig:
        """Stage 2's rules as the worker and `aiops replay` run them: `grouping`, the `stage2_*` names over it,
        and a group's second child announced at once when causes of one incident are not published
        (`prompt_pairs`, set by `stage2_lone_causes`)."""
        aliased = {field: getattr(self, alias) for alias, field in STAGE2_ALIASES.items()
                   if getattr(self, alias) is not None}
        return GroupingConfig(**{**self.grouping.values(), **aliased, "prompt_pairs": not self.stage2_lone_causes})

    @classmethod
    def from_args(cls, **overrides: Any) -> Settings:
        """Settings with CLI flags on top of env and defaults; flags left unset (None) are ignored."""
        return cls(**{name: value for name, value in overrides.items() if value is not None})

    @property
    def max_record_bytes(self) -> int:
        """Largest record the pipeline writes or reads: one ingest body (one body is one record) plus headers and
        key. Producers, the consumer's fetch size and the raw topics' `max.message.bytes` all follow it."""
        return self.ingest_max_body_bytes + RECORD_OVERHEAD

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


class ConfigFileError(ValueError):
    """The settings file is missing, unreadable or of an unknown kind."""


def config_file_source(settings_cls: type[BaseSettings], path: Path) -> PydanticBaseSettingsSource:
    """pydantic-settings' TOML or YAML source for `path`, by its suffix; a missing file is an error, not {}."""
    if not path.is_file():
        raise ConfigFileError(f"config file {str(path)!r} does not exist")
    suffix = path.suffix.lower()
    if suffix == ".toml":
        return TomlConfigSettingsSource(settings_cls, toml_file=path)
    if suffix in (".yaml", ".yml"):
        return YamlConfigSettingsSource(settings_cls, yaml_file=path)
    raise ConfigFileError(f"config file {str(path)!r}: name it .toml, .yaml or .yml")


def _host_port(url: str, default_port: int = 9092) -> str:
    hostport = url.partition("://")[2] or url
    return hostport if ":" in hostport.rsplit("]", 1)[-1] else f"{hostport}:{default_port}"
