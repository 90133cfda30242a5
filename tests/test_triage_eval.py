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


def test_the_gate_earns_its_keep(quick_output: str) -> None:
    # Most errors are severity errors, so the gate is judged on code and severity both right (it was judged on
    # the code alone while confidence mostly followed taxonomy evidence).
    overall, routed, held = (_accuracy(quick_output, label) for label in ("overall", "auto-routed", "human_review"))
    assert routed["both"] >= overall["both"] + 0.04
    assert overall["both"] > held["both"]
    assert routed["severity"] > overall["severity"] > held["severity"]
    both = rf"^both right: overall {NUMBER}  auto-routed {NUMBER}  human_review {NUMBER}$"
    line = re.search(both, quick_output, re.M)
    assert line and float(line.group(2)) == routed["both"]


def _reliability(output: str) -> list[tuple[float, int, float, float]]:
    rows = re.findall(r"^\s+(0\.\d0)\s+(\d+)\s+([\d.]+)%\s+(\d\.\d{3})$", output, re.M)
    return [(float(t), int(n), float(share), float(both)) for t, n, share, both in rows]


def test_reliability_table_covers_thresholds_and_routes_fewer_as_the_bar_rises(quick_output: str) -> None:
    rows = _reliability(quick_output)
    assert [t for t, *_ in rows] == [0.3, 0.4, 0.5, 0.6, 0.7, 0.8]
    routed = [n for _, n, _, _ in rows]
    assert routed == sorted(routed, reverse=True) and routed[0] > routed[-1] > 0
    gate = re.search(r"auto-routed (\d+)/", quick_output)
    assert gate and dict((t, n) for t, n, _, _ in rows)[0.5] == int(gate.group(1))
    # The strictest bar is at least as right as the loosest: confidence orders tickets by how likely right.
    assert rows[-1][3] >= rows[0][3]


def test_data_option_reads_another_file_without_split_or_lang(tmp_path: Path) -> None:
    data = tmp_path / "blind.ndjson"
    rows = [
        {"text": "The whole app is down, all users cannot log in!", "taxonomy_code": "unknown.uncategorized",
         "severity": "sev1"},
        {"text": "Hmm, something just feels a bit off lately.", "taxonomy_code": "unknown.uncategorized",
         "severity": "sev2"},
        {"text": "BGP session to the IX route server is down", "taxonomy_code": "network.routing", "severity": "sev2"},
    ]
    data.write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    done = subprocess.run([sys.executable, str(SCRIPT), "--data", str(data), "--json"], cwd=ROOT,
                          capture_output=True, text=True, timeout=120, check=True)
    sections = json.loads(done.stdout)["sections"]
    assert set(sections) == {"all"}
    figures = sections["all"]
    assert figures["n"] == 3
    assert figures["human_review"]["n"] >= 1  # the vague one
    assert figures["human_review"]["accuracy"]["both"] == 0.0  # and it is the one triage got wrong
    assert [r["threshold"] for r in figures["reliability"]] == [0.3, 0.4, 0.5, 0.6, 0.7, 0.8]
    text = subprocess.run([sys.executable, str(SCRIPT), "--data", str(data)], cwd=ROOT, capture_output=True,
                          text=True, timeout=120, check=True).stdout
    assert "3 texts from blind.ndjson" in text and "== tuned" not in text


def test_json_mode_reports_both_splits() -> None:
    done = subprocess.run([sys.executable, str(SCRIPT), "--json"], cwd=ROOT, capture_output=True, text=True,
                          timeout=120, check=True)
    sections = json.loads(done.stdout)["sections"]
    assert set(sections) == {"all", "tuned", "heldout"}
    assert sections["tuned"]["n"] + sections["heldout"]["n"] == sections["all"]["n"]


def test_on_the_independent_blind_set_routed_tickets_are_well_above_overall() -> None:
    # Evaluated once, never tuned on (benchmarks/data/triage_eval.README.md): a floor under the gate's value on
    # text the rules' author did not write. Routed both-right was 0.711 against 0.542 overall when first
    # recorded; once the rules took the labelling guideline's severity policy (session 29, frozen at 32dc9e7,
    # scored once) overall rose to 0.590 (taxonomy 0.809) and routed to 0.700 (taxonomy 0.883), a smaller lead:
    # the floors below are that run's, lowered from +0.12 and +0.10, with the new overall as a floor of its own.
    blind = ROOT / "benchmarks" / "data" / "triage_blind.ndjson"
    done = subprocess.run([sys.executable, str(SCRIPT), "--data", str(blind), "--json"], cwd=ROOT,
                          capture_output=True, text=True, timeout=120, check=True)
    figures = json.loads(done.stdout)["sections"]["all"]
    assert figures["n"] >= 250
    overall = figures["accuracy"]
    routed, held = figures["auto_routed"]["accuracy"], figures["human_review"]["accuracy"]
    assert overall["both"] >= 0.58
    assert routed["both"] >= overall["both"] + 0.10
    assert routed["taxonomy"] >= overall["taxonomy"] + 0.07
    assert held["both"] < overall["both"]
    assert figures["auto_routed"]["share"] >= 0.30
    # The learned classifier of the same run (trained on the author's and the guideline-written sets, frozen at
    # 37f318d, scored once: 0.705 both right, 31.5% routed at 0.861). Floors set after that run, a ticket or
    # two under it: a regression guard, not a measurement.
    learned = json.loads(done.stdout)["learned"]["section"]
    assert learned["accuracy"]["both"] >= 0.69 and learned["accuracy"]["both"] >= overall["both"] + 0.08
    assert learned["auto_routed"]["accuracy"]["both"] >= 0.84 and learned["auto_routed"]["share"] >= 0.25
