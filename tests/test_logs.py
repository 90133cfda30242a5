"""`AIOPS_LOG_FORMAT=json`: every line a worker writes is one JSON object, tracebacks included."""

from __future__ import annotations

import logging
import sys
import time
from pathlib import Path

import orjson

from stream.broker import EmbeddedBroker
from stream.logs import JsonFormatter

from .workers import Deployment


def test_json_formatter_keeps_a_traceback_in_one_line() -> None:
    try:
        raise ValueError("bad\nbody")
    except ValueError:
        record = logging.LogRecord("stream.pipeline", logging.ERROR, __file__, 1, "refused %s", ("x",), sys.exc_info())
    line = JsonFormatter().format(record)
    assert "\n" not in line
    doc = orjson.loads(line)
    assert (doc["level"], doc["logger"], doc["message"]) == ("error", "stream.pipeline", "refused x")
    assert "ValueError: bad\nbody" in doc["exception"] and doc["time"].endswith("+00:00")


def test_a_json_worker_writes_only_json_lines(broker: EmbeddedBroker, tmp_path: Path) -> None:
    dep = Deployment(broker, tmp_path, partitions=1, extra_env={"AIOPS_LOG_FORMAT": "json",
                                                                "AIOPS_IDLE_ADVANCE": "300"})
    worker = dep.start_worker()
    try:
        worker.wait_web()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and b"Worker ready" not in worker.log.read_bytes():
            time.sleep(0.2)
    finally:
        worker.stop()
    lines = [line for line in worker.log.read_bytes().splitlines() if line.strip()]
    docs = [orjson.loads(line) for line in lines]  # fails on the first line that is not JSON
    assert len(docs) > 10 and {"time", "level", "logger", "message"} <= set(docs[0])
    assert any(d["message"].endswith("Worker ready") for d in docs)
    assert any(d["logger"] == "stream.worker" and "created topics" in d["message"] for d in docs)
