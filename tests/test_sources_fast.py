"""The fast path refuses exactly what the adapter refuses and builds exactly its records.

`correlator.sources.normalize` (the typed fast path for Alertmanager webhooks and generic bodies, the adapter for
anything it does not recognise) against the adapter alone (`parse_arrived` + `record_of`): identical records, clamp counts and
too-old alerts, or identical refusals (field path and reason). Over every Alertmanager body the tests hold
(the adapter's own cases, the ingest's, the fuzz suite's junk and one-field mutations, the load benchmark's),
over generated webhooks (hypothesis: odd times, statuses, labels, unknown and snake-case fields, duplicate keys,
byte flips), over generated generic bodies (one object, arrays, NDJSON; the same kinds of oddities) and over the
other sources' bodies. And it is not vacuous: regular webhooks and generic bodies do take the fast path.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from correlator.eventtime import DEFAULT_GUARD, TimeGuard
from correlator.keys import DEFAULT_KEY_CONFIG, KeyConfig
from correlator.records import record_of
from correlator.sources import SourceError, normalize, parse_arrived
from correlator.sources.fast import alertmanager_records, generic_records
from correlator.sources.screening import screen_alerts

from .paths import LAB_STORM, ROOT
from .test_ingest import ACCEPTED, INVALID
from .test_ingest_fuzz import VALID, junk, mutations
from .test_sources_alertmanager import BAD_BODIES, body_of, webhook

sys.path.insert(0, str(ROOT / "benchmarks"))
from ingest_load import make_bodies  # noqa: E402
from pipeline_throughput import storm_records  # noqa: E402

ARRIVAL = 1772359205.0 + 3600  # an hour after the test bodies' alerts began (2026-03-01)
GUARDS = [DEFAULT_GUARD, TimeGuard(max_future_skew_s=0, horizon_s=60), TimeGuard(horizon_s=None)]
SCOPED = KeyConfig(scope_labels=("cluster", "namespace"), service_labels=("app", "instance"))


def slow(source: str, body: bytes, arrival: float, guard: TimeGuard, config: KeyConfig) -> tuple[Any, ...]:
    """The adapter alone (and its screening): records, clamped count and too-old fingerprints, or the refusal."""
    try:
        guarded = parse_arrived(source, body, arrival, guard, config)
    except SourceError as exc:
        return ("refused", exc.field, exc.reason)
    except ValueError as exc:  # an Alert the model refuses: a dead letter at normalize
        return ("error", type(exc).__name__, str(exc))
    screened, _ = screen_alerts(guarded.alerts)  # the loop guard and source mutes, as `normalize` applies them
    return ("records", [record_of(a) for a in screened], guarded.clamped, [a.fingerprint for a in guarded.too_old])


def fast(source: str, body: bytes, arrival: float, guard: TimeGuard, config: KeyConfig) -> tuple[Any, ...]:
    """`normalize`, the same outcome shape."""
    try:
        out = normalize(source, body, arrival, guard, config)
    except SourceError as exc:
        return ("refused", exc.field, exc.reason)
    except ValueError as exc:
        return ("error", type(exc).__name__, str(exc))
    return ("records", out.records, out.guarded.clamped, [a.fingerprint for a in out.guarded.too_old])


def same(source: str, body: bytes, arrival: float = ARRIVAL, guard: TimeGuard = DEFAULT_GUARD,
         config: KeyConfig = DEFAULT_KEY_CONFIG) -> None:
    assert fast(source, body, arrival, guard, config) == slow(source, body, arrival, guard, config), body[:200]


def collected() -> list[tuple[str, bytes]]:
    """Every alert body the tests hold, by source."""
    am: list[bytes] = [body_of(webhook()), *(case[1] for case in BAD_BODIES)]
    am += [dumps(m) for m in mutations(VALID["alertmanager"])] + junk()
    am += make_bodies(4, 100) + make_bodies(2, 3, seed=11)
    bodies = [("alertmanager", b) for b in am]
    names = {"alertmanager": "alertmanager", "zabbix": "zabbix", "alerts": "generic"}
    bodies += [(names[e], b) for e, b, *_ in [*ACCEPTED, *INVALID] if e in names]
    bodies += [("generic", LAB_STORM.read_bytes()), ("zabbix", dumps(VALID["zabbix"])),
               ("generic", dumps(VALID["alerts"]))]
    bodies += [("zabbix", dumps(m)) for m in mutations(VALID["zabbix"])][:100]
    return bodies


def dumps(value: Any) -> bytes:
    return json.dumps(value).encode()


COLLECTED = collected()


@pytest.mark.parametrize("guard", GUARDS, ids=["default", "tight", "no-horizon"])
@pytest.mark.parametrize("config", [DEFAULT_KEY_CONFIG, SCOPED], ids=["default-keys", "scoped"])
def test_every_collected_body_gives_the_adapters_outcome(guard: TimeGuard, config: KeyConfig) -> None:
    assert len(COLLECTED) > 300
    for source, body in COLLECTED:
        same(source, body, ARRIVAL, guard, config)


def test_regular_webhooks_take_the_fast_path() -> None:
    """Not vacuous: real-shaped webhooks (Alertmanager 0.34's, the load benchmark's) are decoded here."""
    now = time.time()  # the load benchmark's bodies are dated now
    for body, arrival in [(body_of(webhook()), ARRIVAL), *((b, now) for b in make_bodies(3, 100))]:
        records = alertmanager_records(body, arrival, DEFAULT_GUARD, DEFAULT_KEY_CONFIG, None)
        assert records is not None and len(records) == len(orjson.loads(body)["alerts"])
        same("alertmanager", body, arrival)


@pytest.mark.parametrize(("name", "body"), [
    ("pydantic's own field name beside the alias", b'"starts_at": "2026-03-01T10:00:00Z", '),
    ("an unknown field", b'"foo": 1, '),
    ("a lower-case z", None),
])
def test_shapes_it_does_not_read_go_to_the_adapter(name: str, body: bytes | None) -> None:
    payload = webhook()
    raw = body_of(payload)
    if body is None:
        raw = raw.replace(b'Z"', b'z"')
    else:
        raw = raw.replace(b'"status": "firing", "labels"', b'"status": "firing", ' + body + b'"labels"', 1).replace(
            b'"status":"firing","labels"', b'"status":"firing",' + body.replace(b", ", b",") + b'"labels"', 1)
    assert raw != body_of(payload), name
    assert alertmanager_records(raw, ARRIVAL, TimeGuard(horizon_s=None), DEFAULT_KEY_CONFIG, None) is None
    same("alertmanager", raw)


# ---------------------------------------------------------------- generated webhooks

DIGITS = st.integers(0, 9).map(str)
fractions = st.sampled_from(["", ".1", ".123", ".123456", ".1234565", ".123456789", ".9999999", "."])
zones = st.sampled_from(["Z", "z", "+00:00", "+02:00", "-05:30", "+14:00", "+24:00", "+0200", ""])
dates = st.sampled_from(["2026-03-01", "2026-02-29", "2024-02-29", "2026-13-01", "0001-01-01", "9999-12-31",
                         "2026-03-08", "2026-02-20"])
clocks = st.sampled_from(["10:00:05", "00:00:00", "23:59:59", "24:00:00", "10:00:60", "10:00"])
times = (st.builds(lambda d, sep, c, f, z: f"{d}{sep}{c}{f}{z}", dates, st.sampled_from(["T", " ", "t"]), clocks,
                   fractions, zones)
         | st.sampled_from(["0001-01-01T00:00:00Z", "yesterday", "", "2026-03-01", "1772359205"])
         | st.integers(-10, 2**40) | st.floats(allow_nan=False) | st.none())
label_values = st.sampled_from(["", "db", "api:8080", ":9100", "critical", "WARNING", "page", "High CPU on db1 (95%)",
                                "!!!", "x y", "ü"]) | st.text(max_size=6)
labels = st.dictionaries(st.sampled_from(["alertname", "service", "job", "app", "instance", "host", "severity",
                                          "cluster", "namespace", "env", "region"]) | st.text(max_size=4),
                         label_values, max_size=6) | st.sampled_from([None, [], "x", {"a": 1}])
statuses = st.sampled_from(["firing", "resolved", "Firing", "pending", 1, None])
optional = st.none() | st.just("absent")


def _member(status: Any, lab: Any, starts: Any, ends: Any, fingerprint: Any, extra: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"status": status, "labels": lab, "startsAt": starts, "endsAt": ends,
                           "fingerprint": fingerprint, "annotations": {"summary": "s"}, **extra}
    return {k: v for k, v in out.items() if v != "absent"}


members = st.builds(_member, statuses, labels, times, times | st.just("absent"),
                    st.sampled_from(["", "abc", "absent", 5]),
                    st.dictionaries(st.sampled_from(["generatorURL", "starts_at", "foo", "annotations"]),
                                    st.sampled_from(["http://x", None, 1, {}]), max_size=2))
messages = st.builds(
    lambda alerts, version, truncated, group, extra: {
        "version": version, "alerts": alerts, "truncatedAlerts": truncated, "groupLabels": group, "receiver": "r",
        "status": "firing", "groupKey": "{}", **extra},
    st.lists(members, max_size=4), st.sampled_from(["4", "3", 4, None]),
    st.sampled_from([0, 3, -1, 3.0, True, "2", 2**70]), st.sampled_from([None, {}, {"a": "b"}, [], {"a": 1}]),
    st.dictionaries(st.sampled_from(["externalURL", "truncated_alerts", "group_key", "routeLabels", "extra"]),
                    st.sampled_from(["u", -1, None, {}]), max_size=2))


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(message=messages, arrival=st.sampled_from([ARRIVAL, ARRIVAL - 86400, ARRIVAL + 30 * 86400, 0.5]),
       guard=st.sampled_from(GUARDS), config=st.sampled_from([DEFAULT_KEY_CONFIG, SCOPED]))
def test_generated_webhooks_give_the_adapters_outcome(message: dict[str, Any], arrival: float, guard: TimeGuard,
                                                      config: KeyConfig) -> None:
    same("alertmanager", dumps(message), arrival, guard, config)


INSERTS = [b"\\ud800", b"\xff", b"\xed\xa0\x80", b"1" * 400, b"1e400", b"\x00", b'"status":"resolved",', b"\\u0041", b" "]
"""Bytes inserted by the damage tests: invalid UTF-8, lone surrogates, huge numbers, a duplicate key."""


def damaged(data: st.DataObject, body: bytes, inserts: list[bytes], dup: tuple[bytes, bytes]) -> bytes:
    """`body` with a byte flipped, its end cut, bytes inserted, or a key duplicated (`dup`: a key and what goes
    before it)."""
    out = bytearray(body)
    edit = data.draw(st.sampled_from(["flip", "cut", "insert", "dup"]))
    at = data.draw(st.integers(0, len(out) - 1))
    if edit == "flip":
        out[at] = data.draw(st.integers(0, 255))
    elif edit == "cut":
        del out[at:]
    elif edit == "insert":
        out[at:at] = data.draw(st.sampled_from(inserts))
    else:
        return body.replace(dup[0], dup[1] + dup[0], 1)
    return bytes(out)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_byte_level_damage_gives_the_adapters_outcome(data: st.DataObject) -> None:
    """Flipped, cut, duplicated or inserted bytes (invalid UTF-8, lone surrogates, duplicate keys, huge numbers)."""
    same("alertmanager", damaged(data, body_of(webhook()), INSERTS, (b'"version"', b'"version": "3", ')))


# ---------------------------------------------------------------- generic bodies


def test_regular_generic_bodies_take_the_fast_path() -> None:
    """Not vacuous: the throughput benchmark's NDJSON, the same alerts as an array and one alone are decoded here."""
    ndjson, _ = storm_records(3, 50, seed=7)
    lines = [orjson.loads(line) for line in ndjson[0].split(b"\n")]
    arrival = max(line["starts_at"] for body in ndjson for line in orjson.loads(b"[" + body.replace(b"\n", b",") + b"]"))
    for body in [*ndjson, orjson.dumps(lines), orjson.dumps(lines[0]), ndjson[0] + b"\n\n", b"[]"]:
        fast_path = generic_records(body, arrival, DEFAULT_GUARD, DEFAULT_KEY_CONFIG, None)
        assert fast_path is not None and len(fast_path[0]) == len(orjson.loads(body) if body[:1] == b"[" else
                                                                   [line for line in body.split(b"\n") if line.strip()])
        same("generic", body, arrival)


generic_times = (st.floats(allow_nan=False) | st.integers(-10, 2**70) | st.sampled_from(
    [1772359205, 1772359205.5, 0, 1e11, 99999999999.9, -0.0, True, "1772359205", "2026-03-01T10:00:05Z",
     "0001-01-01T00:00:00Z", "", None]))
texts = st.none() | st.sampled_from(["", "db", "Disk Full", "sev1", "PAGE", "unknown-sev", "generic", "zbx"]) | \
    st.integers(0, 3)


def _generic(starts: Any, ends: Any, status: Any, lab: Any, fields: dict[str, Any], extra: dict[str, Any]
             ) -> dict[str, Any]:
    out: dict[str, Any] = {"starts_at": starts, "ends_at": ends, "status": status, "labels": lab, **fields, **extra}
    return {k: v for k, v in out.items() if v != "absent"}


generic_alerts = st.builds(
    _generic, generic_times | st.just("absent"), generic_times | st.just("absent"),
    st.sampled_from(["firing", "resolved", "Firing", None, 1, "absent"]), labels | st.just("absent"),
    st.dictionaries(st.sampled_from(["fingerprint", "service", "symptom", "severity", "source", "summary"]), texts,
                    max_size=4),
    st.dictionaries(st.sampled_from(["annotations", "startsAt", "generatorURL", "silencedBy", "foo"]),
                    st.sampled_from([{"summary": "s"}, {"a": 1}, None, "x", ["m"]]), max_size=2))


def _body(alerts: list[dict[str, Any]], shape: str) -> bytes:
    if shape == "array":
        return dumps(alerts)
    if shape == "one":
        return dumps(alerts[0]) if alerts else b"{}"
    return b"\n".join(dumps(a) for a in alerts) + (b"\n" if shape == "ndjson+newline" else b"")


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(alerts=st.lists(generic_alerts, max_size=4), shape=st.sampled_from(["array", "one", "ndjson", "ndjson+newline"]),
       arrival=st.sampled_from([ARRIVAL, ARRIVAL - 86400, ARRIVAL + 30 * 86400, 0.5]),
       guard=st.sampled_from(GUARDS), config=st.sampled_from([DEFAULT_KEY_CONFIG, SCOPED]))
def test_generated_generic_bodies_give_the_adapters_outcome(alerts: list[dict[str, Any]], shape: str,
                                                            arrival: float, guard: TimeGuard,
                                                            config: KeyConfig) -> None:
    same("generic", _body(alerts, shape), arrival, guard, config)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_byte_level_damage_to_ndjson_gives_the_adapters_outcome(data: st.DataObject) -> None:
    """As for webhooks, on an NDJSON body: a line broken, joined to the next, or split in two included."""
    body = damaged(data, storm_records(1, 3, seed=7)[0][0], [*INSERTS, b"\n", b"\r\n", b"\n{}", b'"foo":1,'],
                   (b'"status"', b'"status": "resolved", '))
    same("generic", body, ARRIVAL, TimeGuard(horizon_s=None))
