"""`aiops triage`: one text or NDJSON on stdin, text and JSON output, the lab routing."""

from __future__ import annotations

import io
import json

import pytest

from stream.cli import COMMANDS, main

JSON_KEYS = {"severity", "confidence", "taxonomy_code", "tags", "reason", "status", "tier", "sla_minutes"}


def _json_lines(out: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def test_triage_is_registered() -> None:
    assert COMMANDS["triage"][0] == "stream.commands.triage"


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["The whole app is down, all users cannot log in!"],
         {"severity": "sev1", "confidence": 1.0, "status": "routed", "tier": "L3", "sla_minutes": 15}),
        (["Hmm, something just feels a bit off lately."],
         {"severity": "sev3", "confidence": 0.2, "status": "human_review", "tier": None, "sla_minutes": None}),
        (["something feels off", "--threshold", "0.1"],
         {"severity": "sev3", "status": "routed", "tier": "L1", "sla_minutes": 240}),
    ],
)
def test_lab_cases_as_json(argv: list[str], expected: dict[str, object], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["triage", *argv, "--json"]) == 0
    (record,) = _json_lines(capsys.readouterr().out)
    assert JSON_KEYS <= record.keys()
    assert {k: record[k] for k in expected} == expected
    assert isinstance(record["tags"], list) and isinstance(record["reason"], str)


def test_text_output_names_every_field_and_the_decision(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["triage", "The whole app is down, all users cannot log in!"]) == 0
    out = capsys.readouterr().out
    for label in ("severity:   sev1", "confidence: 1.00", "taxonomy:   unknown.uncategorized", "tags:", "reason:"):
        assert label in out
    assert "decision:   routed L3 (SLA 15 min)" in out


def test_text_output_for_human_review(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["triage", "Hmm, something just feels a bit off lately."]) == 0
    assert "decision:   human_review" in capsys.readouterr().out


def test_ndjson_on_stdin(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    lines = [
        {"ticket_id": "T-1", "text": "The whole app is down, all users cannot log in!"},
        {"ticket_id": 2, "text": "Hmm, something just feels a bit off lately."},
        {"text": "Serveru telpā pazuda elektrība, UPS strādā no akumulatoriem."},
    ]
    monkeypatch.setattr("sys.stdin", io.StringIO("\n".join(json.dumps(x) for x in lines) + "\n\n"))
    assert main(["triage", "--json"]) == 0
    records = _json_lines(capsys.readouterr().out)
    assert [r["ticket_id"] for r in records] == ["T-1", "2", None]
    assert [(r["status"], r["tier"]) for r in records] == [("routed", "L3"), ("human_review", None), ("routed", "L3")]
    assert records[2]["taxonomy_code"] == "facility.power"
    assert all(JSON_KEYS <= r.keys() for r in records)


def test_bad_stdin_lines_are_reported_and_skipped(monkeypatch: pytest.MonkeyPatch,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO('not json\n{"text": "DNS down for everyone"}\n[1, 2]\n{"text": 5}\n'))
    assert main(["triage", "--json"]) == 1
    captured = capsys.readouterr()
    assert len(_json_lines(captured.out)) == 1
    assert "stdin line 1" in captured.err and "stdin line 3" in captured.err and "stdin line 4" in captured.err


def test_text_mode_on_stdin_shows_ticket_ids(monkeypatch: pytest.MonkeyPatch,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO('{"ticket_id": "T-9", "text": "No space left on device"}\n'))
    assert main(["triage"]) == 0
    out = capsys.readouterr().out
    assert "ticket:     T-9" in out and "storage.capacity" in out


@pytest.mark.parametrize("threshold", ["1.5", "-0.1", "abc"])
def test_a_bad_threshold_is_a_usage_error(threshold: str) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["triage", "x", "--threshold", threshold])
    assert exc.value.code == 2


def test_a_plugin_that_cannot_load_is_reported(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["triage", "x", "--classifier", "no.such.module:factory"]) == 2
    assert "cannot import" in capsys.readouterr().err


def test_a_plugin_is_used_when_configured(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["triage", "anything", "--json", "--classifier", "tests.test_triage:fake_plugin_factory"]) == 0
    (record,) = _json_lines(capsys.readouterr().out)
    assert (record["taxonomy_code"], record["tier"]) == ("network.dns", "L2")
