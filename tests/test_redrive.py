"""`aiops redrive` on the embedded broker: a dead letter goes back to its topic once its cause is fixed.

A resolution that arrives before its ticket is dead-lettered (`unknown_ticket`); once the ticket exists, redriving
that letter resolves it. A dry run lists and sends nothing; a bounded reference (2 MB of junk) is refused with
where its original lies; selections by reason, agent, offsets and time choose what they say.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from stream.broker import EmbeddedBroker
from stream.commands.redrive import Selection, parse_offsets, parse_time
from stream.deadletters import origin_of

from .ticketing import DOWN, events_of, resolution, ticket, wait_events, wait_ready, wait_until
from .workers import ROOT, Deployment, WorkerProc


def redrive(dep: Deployment, *flags: str) -> str:
    """Run `aiops redrive` against the deployment; its output (exit code 0 asserted)."""
    done = subprocess.run([sys.executable, "-m", "stream.cli", "redrive", *flags], cwd=ROOT, env=dep.env(),
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def summary(output: str) -> str:
    return output.strip().splitlines()[-1]


def test_redrive_resends_chosen_letters_once_the_cause_is_fixed(broker: EmbeddedBroker, tmp_path: Path,
                                                              workers: list[WorkerProc]) -> None:
    dep = Deployment(broker, tmp_path)
    dep.create_topics()
    worker = dep.start_worker()
    workers.append(worker)
    wait_ready(worker)
    dep.produce("tickets_raw", [resolution("T-early", who="night-shift"), (b"T-bad", b'{"ticket_id": ')])
    dep.produce("alerts_raw", [(b"generic", b"\x00junk" * 400_000)])  # 2 MB: dead-lettered as a bounded reference
    letters = wait_until(lambda: (lambda r: r if len(r) >= 3 else None)(dep.read("deadletter", 3, timeout=2)),
                         60, "three dead letters", worker)
    origins = sorted((origin_of(r.headers).category, origin_of(r.headers).truncated) for r in letters)
    assert origins == [("malformed_json", False), ("malformed_json", True), ("unknown_ticket", False)], origins
    tickets_before = len(dep.read("tickets_raw", 100, timeout=2))

    listed = redrive(dep, "--dry-run")
    assert summary(listed).endswith("chosen 3: would redrive 2, refused 1 (bounded references cannot be redriven: "
                                    "fix the producer and re-send the original)"), listed
    assert "refused: bounded reference: only the first bytes of 2000000 were kept" in listed, listed
    assert f"the original is {dep.topic('alerts_raw')}[" in listed
    assert len(dep.read("tickets_raw", 100, timeout=2)) == tickets_before, "a dry run sends nothing"

    dep.produce("tickets_raw", [ticket("T-early", DOWN)])  # the cause is fixed: the ticket now exists
    wait_events(dep, "T-early", lambda evs: any(e["status"] == "routed" for e in evs), 30, worker)
    assert "chosen 0" in summary(redrive(dep, "--reason", "unknown_ticket", "--until", "1970-01-02T00:00:00Z"))
    assert "chosen 0" in summary(redrive(dep, "--reason", "unknown_ticket", "--agent", "normalize"))
    done = redrive(dep, "--reason", "unknown_ticket", "--since", "1h")
    assert "chosen 1: redriven 1, refused 0" in summary(done), done
    resolved = wait_events(dep, "T-early", lambda evs: evs[-1]["status"] == "resolved", 30, worker)
    assert resolved[-1]["status"] == "resolved" and len(dep.read("tickets_raw", 100, timeout=2)) == tickets_before + 2
    time.sleep(1.5)  # a redriven record that fails again would be dead-lettered again: it did not
    assert len(dep.read("deadletter", 10, timeout=2)) == 3
    assert worker.metric("aiops_deadletters_total", agent="triage", reason="unknown_ticket") == 1
    assert [e["status"] for e in events_of(dep, "T-early")] == ["routed", "resolved"]

    truncated = next(r for r in letters if origin_of(r.headers).truncated)
    only = redrive(dep, "--partition", str(truncated.partition), "--offsets", str(truncated.offset))
    assert "chosen 1: redriven 0, refused 1" in summary(only), only


def test_selection_and_its_arguments() -> None:
    origin = origin_of([("topic", b"alerts.raw"), ("partition", b"2"), ("offset", b"41"), ("agent", b"normalize"),
                        ("category", b"malformed_json"), ("reason", b"malformed JSON: ...")])
    assert (origin.topic, origin.partition, origin.offset, origin.truncated) == ("alerts.raw", 2, 41, False)
    chosen = Selection(reasons=frozenset({"malformed_json"}), partition=0, offsets=(5, 9), since=100.0, until=200.0)
    assert chosen.chooses(0, 5, 150.0, origin) and chosen.chooses(0, 9, 100.0, origin)
    assert not chosen.chooses(0, 10, 150.0, origin) and not chosen.chooses(1, 5, 150.0, origin)
    assert not chosen.chooses(0, 5, 99.0, origin) and not chosen.chooses(0, 5, 201.0, origin)
    assert not Selection(reasons=frozenset({"unknown_ticket"})).chooses(0, 5, 150.0, origin)
    assert not Selection(agents=frozenset({"triage"})).chooses(0, 5, 150.0, origin)
    assert parse_offsets("3-7") == (3, 7) and parse_offsets("3-") == (3, None) and parse_offsets("4") == (4, 4)
    assert parse_time("2h", now=10_000.0) == 10_000.0 - 7200
    assert parse_time("1970-01-01T00:01:00Z", now=0.0) == 60.0 and parse_time("12.5", now=0.0) == 12.5
    for bad in ("7-3", "x"):
        try:
            parse_offsets(bad)
        except Exception as exc:  # noqa: BLE001 - argparse's error type
            assert bad in str(exc)
        else:
            raise AssertionError(f"{bad} accepted")
