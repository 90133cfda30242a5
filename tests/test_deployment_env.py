"""What a test's or benchmark's worker inherits from the caller's environment (`tests.workers.Deployment.env`)."""

from __future__ import annotations

from pathlib import Path

import pytest

from correlator.compiled import PURE_ENV
from stream.broker import EmbeddedBroker

from .workers import Deployment


def test_a_worker_gets_the_engine_build_switch_but_none_of_the_caller_s_settings(
        broker: EmbeddedBroker, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # worker_cpu_ab.py ran a base without a build pure against a compiled tree under AIOPS_PURE=1 (session 38)
    monkeypatch.setenv(PURE_ENV, "1")
    monkeypatch.setenv("AIOPS_STAGE2", "false")
    env = Deployment(broker, tmp_path).env()
    assert env[PURE_ENV] == "1"
    assert "AIOPS_STAGE2" not in env  # a setting the deployment did not choose never leaks in
    assert env["AIOPS_BROKER"] == broker.url
