"""Shared fixtures: the embedded Tansu broker, started once per test session, and the tests' worker processes;
both stopped by pid."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from stream.broker import EmbeddedBroker, start_broker

from .workers import WorkerProc

# One BLAS/OpenMP thread per process, for this session and every process it starts (a worker, a benchmark script).
# `make test` runs the suite in several processes on a 2-core machine, and a pool of spinning BLAS threads in each
# oversubscribes the cores: training the triage model (scikit-learn) took 155 s of wall time and 15 s of CPU with
# the default pool on a busy machine, 40 s and 2.7 s with one thread, side by side. Set before numpy is imported
# (no plugin imports it); a value set by the caller is kept.
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")


@pytest.fixture(scope="session")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedBroker]:
    """A Tansu broker on a free loopback port with memory storage, for the whole session."""
    log_path = tmp_path_factory.mktemp("tansu") / "tansu.log"
    handle = start_broker(log_path=log_path)
    try:
        yield handle
    finally:
        handle.stop()  # SIGTERM, then SIGKILL by pid after 5 s


@pytest.fixture
def workers() -> Iterator[list[WorkerProc]]:
    """A list a test appends the workers it starts to; each is stopped by pid when the test ends."""
    started: list[WorkerProc] = []
    yield started
    for w in started:
        w.stop()


# The files that took longest (seconds, one serial run on a busy machine), longest first. They run before every
# other file, so that under pytest-xdist (`make test`, a file to a process) none of them is still running alone at
# the end while the other processes idle; a file missing here only runs later. Files with broker or process tests
# (markers below) come next, the in-process unit tests, many and short, fill in last.
SLOW_FIRST = (
    "test_benchmarks.py",  # 326
    "test_triage_eval.py",  # 315 (most of it a BLAS thread pool fighting the others, see above)
    "test_triage_learned.py",  # 261
    "test_tickets_pipeline.py",  # 198
    "test_triage_learning_pipeline.py",  # 159
    "test_pipeline.py",  # 157
    "test_stage2_pipeline.py",  # 153
    "test_console.py",  # 110 (two workers and a browser)
    "test_group_recovery.py",  # 80 (two broker restarts under two workers)
    "test_ingest.py",  # 71
    "test_fuzz_topics.py",  # 63
    "test_packaging.py",  # 54
    "test_admission.py",  # 52
    "test_notify_pipeline.py",  # 49
)
PROCESS_MARKERS = ("integration", "e2e", "packaging")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test that uses the broker is an integration test (`-m "not integration"` skips them); the slow files
    run first (SLOW_FIRST), each file's tests in their own order."""
    for item in items:
        if "broker" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.integration)
    with_processes = {item.path for item in items if any(item.get_closest_marker(m) for m in PROCESS_MARKERS)}

    def rank(item: pytest.Item) -> int:
        if item.path.name in SLOW_FIRST:
            return SLOW_FIRST.index(item.path.name)
        return len(SLOW_FIRST) + (0 if item.path in with_processes else 1)

    items.sort(key=rank)  # stable: a file's tests, and files of one rank, keep the collection's order
