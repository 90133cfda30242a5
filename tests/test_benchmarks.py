"""Each benchmark's --quick mode runs and prints well-formed figures (never asserting a speed)."""

from __future__ import annotations

import json
import subprocess
import sys

from .paths import ROOT


def run_json(script: str, *args: str, timeout: float = 300) -> object:
    out = subprocess.run([sys.executable, str(ROOT / "benchmarks" / script), "--quick", "--json", *args],
                         check=True, capture_output=True, text=True, timeout=timeout, cwd=ROOT)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_engine_throughput_quick() -> None:
    rows = run_json("engine_throughput.py")
    assert isinstance(rows, list) and len(rows) == 2
    for row in rows:
        assert row["alerts"] > 0 and row["records"] >= row["alerts"]
        assert row["engine_records_per_s"] > 0 and row["baseline_records_per_s"] > 0
        assert row["peak_rss_mb"] > 0
        assert row["peak_state"]["keys"] > 0


def test_pipeline_throughput_quick() -> None:
    result = run_json("pipeline_throughput.py")
    assert isinstance(result, dict)
    assert result["alerts"] == result["records"] * result["per_record"]
    assert result["pipeline_alerts_per_s"] > 0 and result["ceiling_alerts_per_s"] > 0
    assert 0 < result["ratio"]
