"""The Faust app: settings applied, orjson codec, the topics of DESIGN.md; agents are added by other modules.

`make_app(settings)` returns an `App` (a `faust.App`) carrying `app.settings` and `app.pipeline_topics`.
`run_worker(app)` runs it as a worker in the current process, logging through Faust's logging config.

Serialization: values are orjson on every topic that carries documents; `alerts.raw` carries the bytes as
received (an Alertmanager body, NDJSON, anything), so its values stay raw and the normalize agent decides what
they are and dead-letters what they are not. Keys are UTF-8 strings, as external producers write them.
Faust tables ignore the app's serializers (their changelogs use Faust's stdlib `json` unless the key or value
type is bytes), so create tables with `make_table`, which gives them raw string keys and orjson values.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, cast

import faust
import orjson
from faust.serializers import codecs
from faust.types import TP, EventT, TopicT
from faust.web import View
from mode import Seconds
from mode.utils.objects import cached_property
from mode.utils.queues import FlowControlEvent

from correlator import metrics
from stream.auth import TokenBook, auth_middleware
from stream.checkpoint import CommitGate
from stream.consumer import TRANSPORT_SCHEME, FaustSettings, FlowControl, release
from stream.problems import problem_middleware
from stream.security import faust_credentials
from stream.settings import Settings

__all__ = [
    "App",
    "CheckpointedTable",
    "OrjsonCodec",
    "PipelineTopics",
    "Worker",
    "logging_config",
    "make_app",
    "make_table",
    "run_worker",
    "slash_twin",
    "use_uvloop",
]

log = logging.getLogger(__name__)

CODEC = "orjson"
_KAFKA_SCHEMES = {"kafka", "aiokafka"}


class OrjsonCodec(codecs.Codec):
    """JSON via orjson; pydantic models are dumped as JSON-mode dicts, sets as lists."""

    def _dumps(self, obj: Any) -> bytes:
        return orjson.dumps(obj, default=_jsonable, option=orjson.OPT_NON_STR_KEYS)

    def _loads(self, s: bytes) -> Any:
        return orjson.loads(s)


def _jsonable(obj: Any) -> Any:
    dump = getattr(obj, "model_dump", None)
    if callable(dump):
        return dump(mode="json")
    if isinstance(obj, set | frozenset):
        return sorted(obj)
    raise TypeError(f"cannot serialize {type(obj).__name__}")


codecs.register(CODEC, OrjsonCodec())


@dataclass(frozen=True)
class PipelineTopics:
    """The pipeline's topic objects, names and partition counts from `Settings`."""

    alerts_raw: TopicT
    alerts: TopicT
    incidents: TopicT
    tickets_raw: TopicT
    tickets_triaged: TopicT
    deadletter: TopicT

    def all(self) -> list[TopicT]:
        """Every topic, in DESIGN.md order."""
        return [self.alerts_raw, self.alerts, self.incidents, self.tickets_raw, self.tickets_triaged, self.deadletter]


def slash_twin(path: str) -> str | None:
    """The other slash form of a web path (`/a` <-> `/a/`), None for the root, which has only one."""
    path = "/" + path.lstrip("/")
    if path == "/":
        return None
    return path.rstrip("/") if path.endswith("/") else path + "/"


class CheckpointedTable(faust.Table[Any, Any]):
    """Every table of the app: restored from its changelog (and kept as a standby) through a `CommitGate`, so a
    checkpoint's keys are applied only with its progress (`stream.checkpoint`)."""

    @cached_property
    def gate(self) -> CommitGate:
        """What this table's changelog records wait for."""
        return CommitGate()

    def apply_changelog_batch(self, batch: Iterable[EventT[Any]]) -> None:
        """Apply the records of `batch` whose checkpoint has committed."""
        super().apply_changelog_batch(self.gate.committed(batch))

    async def on_recovery_completed(self, active_tps: set[TP], standby_tps: set[TP]) -> None:
        """Say which restored partitions left a checkpoint's keys out (its progress never landed)."""
        for tp in sorted(active_tps):
            if waiting := self.gate.waiting(tp.topic, tp.partition):
                log.warning("%s partition %d: %d records of a checkpoint that never committed were not restored "
                            "(state as of the last progress)", tp.topic, tp.partition, waiting)
        await super().on_recovery_completed(active_tps, standby_tps)


_Settings = Settings  # `Settings` inside App's body is Faust's settings class
TimerFun = Callable[[], Awaitable[None]]


class App(faust.App):
    """A `faust.App` whose settings include `consumer_fetch_max_wait_ms`, with our settings and topics."""

    Settings = FaustSettings
    settings: _Settings
    pipeline_topics: PipelineTopics
    stop_hooks: list[Callable[[], Awaitable[None]]]
    """Run first when the app stops, before Faust waits for every message in flight to be acknowledged."""
    redelivered_topics: frozenset[str] = frozenset()
    """Topics whose agents apply a record delivered twice as once: the consumer re-delivers their re-reads
    (`stream.consumer.ReadOffsets`)."""

    @cached_property
    def flow_control(self) -> FlowControlEvent:
        """Faust's flow control of the agents' queues, keeping what is queued when resumed while running
        (`stream.consumer.FlowControl`: emptied, those records were never acknowledged and stalled a partition)."""
        flow = FlowControl(loop=self.loop)
        flow.release = lambda messages: release(self.consumer, messages)
        return flow

    def page(self, path: str, **options: Any) -> Callable[[Any], type[View]]:
        """`faust.App.page` that also serves the path's other slash form (`/incidents` and `/incidents/`).

        People, peers' APIs and our own README write both; aiohttp matches one exactly and answers 404 to the
        other. The twin route is the same view instance, so both forms behave alike for every method.
        """
        register = super().page(path, **options)

        def decorator(fun: Any) -> type[View]:
            view_cls = register(fun)
            twin = slash_twin(path)
            if twin is not None:
                view = self.web.views["/" + path.lstrip("/")]
                self.web.route(twin, view, options.get("cors_options"))
            return view_cls

        return decorator

    # Faust's App.timer shadows mode's Service.timer (a classmethod of another shape) the same way, and says so.
    def timer(self, interval: Seconds, on_leader: bool = False, traced: bool = True,  # type: ignore[override]
              name: str | None = None, max_drift_correction: float = 0.1) -> Callable[[TimerFun], TimerFun]:
        """`faust.App.timer` with its type written out.

        Faust hides its own from the type checker (`no_type_check`), which under mypy --strict makes every function
        it decorates untyped.
        """
        decorator: Callable[[TimerFun], TimerFun] = super().timer(
            interval, on_leader=on_leader, traced=traced, name=name, max_drift_correction=max_drift_correction)
        return decorator

    async def on_stop(self) -> None:
        """Run the stop hooks, then Faust's stop (which waits for unacknowledged input, then commits)."""
        for hook in getattr(self, "stop_hooks", ()):
            try:
                await hook()
            except Exception:  # a failing hook must not keep the worker from stopping; its input is re-read
                log.exception("stop hook %r failed", hook)
        await super().on_stop()


class Worker(faust.Worker):
    """Faust's worker without the terminal spinner.

    At log level warn and above Faust's worker installs a spinner handler and sets the root logger to
    DEBUG, so every debug record anywhere is formatted: that cost 11% CPU.
    """

    def on_setup_root_logger(self, logger: logging.Logger, level: int) -> None:
        """Leave the root logger as the logging config set it, and never install the spinner."""
        self.spinner = None

    async def on_start(self) -> None:
        """Say which event loop runs the worker (uvloop unless it is missing)."""
        loop = type(self.loop)
        log.info("worker event loop: %s.%s", loop.__module__, loop.__name__)
        await super().on_start()


def use_uvloop() -> bool:
    """Install uvloop's event-loop policy (if available); must run before the App is created."""
    try:
        import uvloop
    except ImportError:
        return False
    if not isinstance(asyncio.get_event_loop_policy(), uvloop.EventLoopPolicy):
        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    return True


def logging_config(level: str, fmt: str = "plain") -> dict[str, Any]:
    """A `logging.config.dictConfig` for workers: one stderr handler at `level`, plain text or JSON lines."""
    upper = level.upper()
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"plain": {"format": "[%(asctime)s] %(levelname)s %(name)s: %(message)s"},
                       "json": {"()": "stream.logs.JsonFormatter"}},
        "handlers": {
            "stderr": {"class": "logging.StreamHandler", "formatter": fmt, "stream": "ext://sys.stderr"}
        },
        "root": {"level": upper, "handlers": ["stderr"]},
    }


def faust_broker_urls(urls: tuple[str, ...]) -> list[str]:
    """Broker URLs with `kafka://` mapped to our transport's scheme, so the fetch wait applies."""
    mapped = []
    for url in urls:
        scheme, sep, rest = url.partition("://")
        mapped.append(f"{TRANSPORT_SCHEME}://{rest}" if sep and scheme in _KAFKA_SCHEMES else url)
    return mapped


def faust_options(settings: Settings) -> dict[str, Any]:
    """The Faust settings derived from ours."""
    return {
        "broker": faust_broker_urls(settings.broker),
        "broker_session_timeout": settings.broker_session_timeout,
        # 0 by default (benchmarks/RESULTS.md, recov38): a standby costs every worker the others' changelogs, and Faust
        # re-reads a promoted partition's changelog from its start anyway (in-memory stores persist no offset)
        "table_standby_replicas": settings.table_standby_replicas,
        "broker_credentials": faust_credentials(settings),
        "consumer_fetch_max_wait_ms": settings.fetch_max_wait_ms,
        "producer_max_batch_size": settings.producer_batch_bytes,
        # A refused ingest body goes to `deadletter` whole, and normalize reads bodies of that size: both
        # clients must take the largest record (Faust's defaults are 1 MB; Kafka needs fetch >= record).
        "producer_max_request_size": max(1_000_000, settings.max_record_bytes),
        "consumer_max_fetch_size": max(1024**2, settings.max_record_bytes),
        "topic_replication_factor": settings.topic_replication_factor,  # changelogs Faust creates, its assignor topic
        "topic_partitions": settings.partitions,
        "key_serializer": "raw",
        "value_serializer": CODEC,
        "web_port": settings.web_port,
        **({"canonical_url": settings.web_url} if settings.web_url else {}),
        # every route of the web port passes the token check (stream/auth.py), routes added later included, and
        # every error answer leaves as application/problem+json (stream/problems.py): outermost, so it shapes
        # the token check's refusals and aiohttp's own 404/405/413 too
        "web_application_options": {"middlewares": [problem_middleware,
                                                    auth_middleware(TokenBook(settings.role_tokens()))]},
        "datadir": str(settings.data_dir / f"{settings.app_id}-data"),
        "logging_config": logging_config(settings.log_level, settings.log_format),
        "autodiscover": False,
        "Table": CheckpointedTable,  # every table restores whole checkpoints only (stream.checkpoint)
        # Faust checks the offset a table's store persisted against its changelog's end, and crashes the worker when
        # the end is lower. The stores here are in memory and persist none: the only offset it can compare is how
        # far this process read, and the only way past the end is a changelog the broker lost and someone re-created
        # under the live worker, which stream/recovery.py handles (seen: ConsistencyError at a worker's second broker
        # restart, in the worker whose broker watch had not seen the topics missing, another one re-created them).
        # Since the broker epoch every worker forgets those offsets at a loss, and with this check on both
        # broker-restart tests of test_group_recovery.py passed twice without it firing; it stays off for a loss a
        # worker sees late (it could not reach the broker as its rejoin began), where it would crash the worker
        "recovery_consistency_check": False,
    }


def make_app(settings: Settings | None = None, **faust_overrides: Any) -> App:
    """The configured Faust app with the pipeline's topics; `faust_overrides` win over derived settings."""
    settings = settings or Settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)  # Faust creates only the last level
    if not settings.metrics:
        metrics.disable()  # before any agent or view exists: every update from here on is a no-op
    use_uvloop()
    app = App(settings.app_id, **{**faust_options(settings), **faust_overrides})
    app.settings = settings
    app.stop_hooks = []
    app.pipeline_topics = make_topics(app, settings)
    return app


def make_topics(app: faust.App, settings: Settings) -> PipelineTopics:
    """Topic objects for every pipeline topic, names and partitions from `settings`."""
    raw_values = {"alerts_raw"}

    def topic(field: str) -> TopicT:
        return app.topic(
            getattr(settings.topics, field),
            partitions=settings.partitions_for(field),
            key_type=str,
            value_serializer="raw" if field in raw_values else CODEC,
        )

    names: Mapping[str, TopicT] = {field: topic(field) for field in PipelineTopics.__dataclass_fields__}
    return PipelineTopics(**names)


def make_table(app: faust.App, name: str, **options: Any) -> faust.Table[str, Any]:
    """`app.Table(name, **options)` with str keys and orjson values in its changelog.

    Set right after construction because `Table.__init__` derives both serializers from the key and value
    types and accepts no serializer arguments; the changelog topic is built later, from these attributes.
    """
    table = cast("faust.Table[str, Any]", app.Table(name, key_type=str, **options))
    table.key_serializer = "raw"
    table.value_serializer = CODEC
    return table


def run_worker(app: App, **worker_options: Any) -> None:
    """Run `app` as a worker in this process until SIGINT/SIGTERM; exits the process when done."""
    options = {"loglevel": app.settings.log_level, "redirect_stdouts": False, **worker_options}
    Worker(app, **options).execute_from_commandline()
