"""The labelled triage set and `benchmarks/triage_eval.py --quick`: well formed, and the gate pays off."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from correlator.triage import DEFAULT_TAXONOMY

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "triage_eval.py"
DATA = ROOT / "benchmarks" / "data" / "triage_eval.ndjson"
NUMBER = r"(\d\.\d{3}|  n/a)"


def _records() -> list[dict[str, str]]:
    return [json.loads(line) for line in DATA.read_text(encoding="utf-8").splitlines() if line.strip()]


def test_the_set_is_large_bilingual_complete_and_keeps_a_held_out_part() -> None:
    records = _records()
    assert len(records) >= 150
    assert all(r["taxonomy_code"] in DEFAULT_TAXONOMY and r["severity"] in ("sev1", "sev2", "sev3") for r in records)
    for split in ("tuned", "heldout"):
        cells = {(r["taxonomy_code"], r["lang"]) for r in records if r["split"] == split}
        assert cells == {(c, lang) for c in DEFAULT_TAXONOMY for lang in ("en", "lv")}, split
    share = Counter(r["split"] for r in records)["heldout"] / len(records)
    assert 0.25 <= share <= 0.4
    assert len({r["id"] for r in records}) == len(records)


@pytest.fixture(scope="module")
def quick_output() -> str:
    done = subprocess.run([sys.executable, str(SCRIPT), "--quick"], cwd=ROOT, capture_output=True, text=True,
                          timeout=120, check=True)
    return done.stdout


def _accuracy(output: str, label: str) -> dict[str, float]:
    match = re.search(rf"^accuracy {re.escape(label)}: taxonomy {NUMBER}  severity {NUMBER}  both {NUMBER}$",
                      output, re.M)
    assert match, f"no accuracy line for {label}"
    return dict(zip(("taxonomy", "severity", "both"), (float(g) for g in match.groups()), strict=True))


def test_quick_output_is_well_formed(quick_output: str) -> None:
    assert re.search(r"^== all \(\d+ texts\) ==$", quick_output, re.M)
    for code in DEFAULT_TAXONOMY:
        row = re.search(rf"^{re.escape(code)}\s+{NUMBER}\s+{NUMBER}\s+(\d+)$", quick_output, re.M)
        assert row, f"no row for {code}"
        assert int(row.group(3)) > 0
    gate = re.search(r"^gate: threshold 0\.50  auto-routed (\d+)/(\d+) \(([\d.]+)%\)  human_review (\d+)/(\d+)",
                     quick_output, re.M)
    assert gate
    routed, total, _, held, total_again = gate.groups()
    assert int(routed) + int(held) == int(total) == int(total_again)
    assert "== tuned" not in quick_output  # quick: one section only


def test_auto_routed_accuracy_exceeds_overall(quick_output: str) -> None:
    overall, routed, held = (_accuracy(quick_output, label) for label in ("overall", "auto-routed", "human_review"))
    assert routed["taxonomy"] > overall["taxonomy"]
    assert routed["both"] > overall["both"] > held["both"]


def test_json_mode_reports_both_splits() -> None:
    done = subprocess.run([sys.executable, str(SCRIPT), "--json"], cwd=ROOT, capture_output=True, text=True,
                          timeout=120, check=True)
    sections = json.loads(done.stdout)["sections"]
    assert set(sections) == {"all", "tuned", "heldout"}
    assert sections["tuned"]["n"] + sections["heldout"]["n"] == sections["all"]["n"]
