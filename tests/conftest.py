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


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test that uses the broker is an integration test (`-m "not integration"` skips them)."""
    for item in items:
        if "broker" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.integration)
