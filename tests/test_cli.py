"""The `aiops` command as a person first reads it: `up --help` names the settings that trade latency for
reordering (and the flags reach the settings), and `tail` follows every topic the project writes, showing a
dead letter's headers. Pure: no broker (the live `tail` runs are in test_first_hour.py)."""

from __future__ import annotations

import subprocess
import sys

import orjson
import pytest
from aiokafka.structs import ConsumerRecord

from correlator.models import IncidentEvent
from stream.cli import build_parser
from stream.commands.tail import TAILABLE, format_record, record_json
from stream.commands.tail import shown as tail_shows
from stream.commands.worker import LATENCY_SETTINGS, settings_from
from stream.feed import format_event
from stream.incident_records import PARENT_HEADERS, PROGRESS_HEADERS
from stream.settings import Settings, TopicNames

from .paths import ROOT


def _record(topic: str, value: bytes | None, headers: list[tuple[str, bytes]] | None = None,
            key: bytes | None = b"k") -> ConsumerRecord[bytes, bytes]:
    return ConsumerRecord(topic=topic, partition=2, offset=17, timestamp=0, timestamp_type=0, key=key, value=value,
                          checksum=None, serialized_key_size=1, serialized_value_size=len(value or b""),
                          headers=headers or [])


@pytest.mark.parametrize("command", ["up", "worker"])
def test_help_names_the_settings_that_trade_latency_for_reordering(command: str) -> None:
    out = subprocess.run([sys.executable, "-m", "stream.cli", command, "--help"], cwd=ROOT, capture_output=True,
                         text=True, check=True).stdout
    flat = " ".join(out.split())
    assert "latency and reordering" in flat
    for name in LATENCY_SETTINGS:
        default = Settings.model_fields[name].default
        assert f"--{name.replace('_', '-')} DURATION" in flat
        assert f"(default {default:g}s, env AIOPS_{name.upper()})" in flat
    assert set(LATENCY_SETTINGS) == {"idle_flush", "allowed_lateness"}


def test_latency_flags_reach_the_settings() -> None:
    args = build_parser().parse_args(["up", "--idle-flush", "0.25", "--allowed-lateness", "2s"])
    settings = settings_from(args)
    assert (settings.idle_flush, settings.allowed_lateness) == (0.25, 2.0)
    defaults = settings_from(build_parser().parse_args(["worker"]))
    assert (defaults.idle_flush, defaults.allowed_lateness) == (1.0, 0.5)


def test_tail_follows_every_topic_the_project_writes() -> None:
    assert set(TAILABLE) == {field.default for field in TopicNames.model_fields.values()}
    assert {"incidents", "deadletter", "tickets.triaged", "alerts", "alerts.raw"} <= set(TAILABLE)
    for name in TAILABLE:
        assert build_parser().parse_args(["tail", name]).what == name


def test_a_dead_letter_line_shows_its_headers_and_size() -> None:
    headers = [("reason", b"not JSON: unexpected character"), ("agent", b"normalize"), ("topic", b"alerts.raw"),
               ("partition", b"3"), ("offset", b"41"), ("category", b"invalid_json"), ("x-extra", b"kept")]
    line = format_record("deadletter", _record("deadletter", b"garbage\n\xff", headers))
    assert line.startswith("deadletter[2]@17 key=k reason=")
    for shown in ('reason="not JSON: unexpected character"', 'agent="normalize"', 'topic="alerts.raw"',
                  'partition="3"', 'offset="41"', 'size="9"', 'x-extra="kept"', "value=garbage\\n\\xff"):
        assert shown in line, line
    assert line.index("reason=") < line.index("agent=") < line.index("topic=") < line.index("x-extra=")
    assert 'size="5"' in format_record("deadletter", _record("deadletter", b"whole", [("size", b"5")]))


def test_tail_lines_for_other_topics_and_for_records_that_are_not_what_the_topic_carries() -> None:
    event = IncidentEvent.model_validate_json(orjson.dumps({
        "kind": "opened", "incident_id": "inc-1", "seq": 1, "key": "checkout/Down", "service": "checkout",
        "symptom": "Down", "status": "firing", "alert_count": 2, "firing_count": 2, "max_severity": "critical",
        "first_seen": 1.0, "last_seen": 2.0, "window_start": 0.0, "distinct_fingerprints": 2, "duplicates": 0,
        "emitted_at": 2.0}))
    assert format_record("incidents", _record("incidents", event.model_dump_json().encode())) == format_event(event)
    assert format_record("incidents", _record("incidents", b"{}")) == "incidents[2]@17 key=k {}"
    triaged = format_record("tickets_triaged", _record("tickets.triaged", b'{"ticket_id": "T-1", "status": "routed"}'))
    assert triaged == 'tickets.triaged[2]@17 key=k {"ticket_id":"T-1","status":"routed"}'
    long = format_record("alerts_raw", _record("alerts.raw", b"x" * 1000, key=None))
    assert long.startswith("alerts.raw[2]@17 key=null xxx") and long.endswith("... (1000 bytes)")
    assert format_record("alerts_raw", _record("alerts.raw", None)).endswith("key=k null")


def test_tail_json_carries_headers_and_the_parsed_value() -> None:
    doc = record_json(_record("deadletter", b'{"a": 1}', [("reason", b"bad shape")]))
    assert doc == {"topic": "deadletter", "partition": 2, "offset": 17, "timestamp_ms": 0, "key": "k",
                   "headers": {"reason": "bad shape"}, "size": 8, "value": {"a": 1}}
    assert record_json(_record("alerts.raw", b"\xffnot json"))["value"] == "\\xffnot json"


def test_tail_hides_stage_2_progress_on_incidents_unless_asked() -> None:
    progress = _record("incidents", b'{"decided": {"0": 1.0}, "emitted_at": 2.0}', PROGRESS_HEADERS)
    cause = _record("incidents", b"{}", PARENT_HEADERS)
    assert not tail_shows("incidents", progress)
    assert tail_shows("incidents", progress, progress=True)
    assert tail_shows("incidents", cause) and tail_shows("incidents", _record("incidents", b"{}"))
    assert tail_shows("deadletter", _record("deadletter", b"x", PROGRESS_HEADERS))  # only `incidents` carries progress
    assert build_parser().parse_args(["tail", "incidents", "--progress"]).progress
