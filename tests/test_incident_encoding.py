"""`encode_incident_event` writes the bytes `orjson.dumps(event.model_dump(mode="json"))` wrote, for every event the
engine makes of the lab storm (opened, updated, expired a day later), and for generated events (odd floats, empty
and full fields)."""

from __future__ import annotations

import math
from typing import Any

import msgspec
import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from correlator.config import DEFAULT_CONFIG
from correlator.engine import Correlator
from correlator.models import IncidentEvent
from correlator.records import record_of
from correlator.sources import parse
from stream.incident_records import decode_incident_fast, decode_incident_record, encode_incident_event

from .paths import LAB_STORM


def _dumped(event: IncidentEvent) -> bytes:
    return orjson.dumps(event.model_dump(mode="json"))


def test_the_engines_events_encode_to_the_same_bytes() -> None:
    records = [record_of(a) for a in parse("generic", LAB_STORM.read_bytes())]
    engine = Correlator(DEFAULT_CONFIG)
    events = engine.ingest(records) + engine.advance(max(r.starts_at for r in records) + 86400)
    assert {e.kind for e in events} >= {"opened", "updated", "expired"} and len(events) > 5
    for event in events:
        assert encode_incident_event(event) == _dumped(event)
        assert decode_incident_record(encode_incident_event(event), []) == event


def test_the_sla_clocks_are_the_same_from_the_one_pass_decode_as_from_the_model() -> None:
    """The incident SLA agent, the analytics store and the console's feed read stage-1 events in one msgspec pass
    (`decode_incident_fast`): on the lab storm's events every field and every clock equals the model's."""
    from correlator.triage.incident_sla import on_incident_event

    records = [record_of(a) for a in parse("generic", LAB_STORM.read_bytes())]
    engine = Correlator(DEFAULT_CONFIG)
    events = engine.ingest(records) + engine.advance(max(r.starts_at for r in records) + 86400)
    slow: dict[str, Any] = {}
    fast: dict[str, Any] = {}
    for k, event in enumerate(events):
        one_pass = decode_incident_fast(encode_incident_event(event))
        assert one_pass is not None and msgspec.structs.asdict(one_pass) == event.model_dump()
        now = 1_772_420_400.0 + 60 * k
        slow[event.incident_id] = on_incident_event(slow.get(event.incident_id), event, now) or \
            slow.get(event.incident_id)
        fast[event.incident_id] = on_incident_event(fast.get(event.incident_id), one_pass, now) or \
            fast.get(event.incident_id)
    assert fast == slow and any(c is not None and c.phase != "open" for c in slow.values())


texts = st.text(max_size=12)
times = st.floats(allow_nan=True, allow_infinity=True) | st.integers(0, 2**40).map(float)


@settings(max_examples=200, deadline=None)
@given(kind=st.sampled_from(["opened", "updated", "resolved", "expired"]), text=texts, seq=st.integers(1, 2**62),
       first=times, last=times, count=st.integers(0, 10**6), sample=st.lists(texts, max_size=4),
       entities=st.dictionaries(texts, st.lists(texts, max_size=3), max_size=3),
       previous=st.none() | texts, severity=st.sampled_from(["critical", "warning", "info"]))
def test_generated_events_encode_to_the_same_bytes(kind: str, text: str, seq: int, first: float, last: float,
                                                   count: int, sample: list[str], entities: dict[str, list[str]],
                                                   previous: str | None, severity: str) -> None:
    event = IncidentEvent.model_validate({
        "kind": kind, "incident_id": text or "i", "seq": seq, "key": f"{text}/s", "service": text, "symptom": "x",
        "scope": text, "status": "firing", "first_seen": first, "last_seen": last, "window_start": first,
        "alert_count": count, "distinct_fingerprints": count, "firing_count": 0, "duplicates": count,
        "max_severity": severity, "member_sample": sample, "entities": entities, "previous_id": previous,
        "late_alerts": 0, "reason": text, "emitted_at": last})
    encoded = encode_incident_event(event)
    assert encoded == _dumped(event)
    if all(math.isfinite(t) for t in (first, last)):
        assert decode_incident_record(encoded, []) == event
    fast = decode_incident_fast(encoded)  # the readers' one pass: refuses (they ask the model) or agrees
    assert fast is None or msgspec.structs.asdict(fast) == event.model_dump()


@settings(max_examples=300, deadline=None)
@given(st.one_of(
    st.none(),
    st.lists(st.tuples(st.sampled_from(["aiops-stage", "aiops-kind", "x", ""]),
                       st.sampled_from([b"2", b"1", b"parent", b""])), max_size=4),
    st.dictionaries(st.sampled_from(["aiops-stage", "aiops-kind", "x"]), st.sampled_from([b"2", b"1", b"parent"]),
                    max_size=3),
))
def test_a_record_is_stage_2s_exactly_when_a_header_says_so(headers: Any) -> None:
    """`is_stage2_record`'s early answer for no headers (a stage-1 event, nearly every record) and its loop give
    what the rule says, for a list of pairs or a mapping: some header named `aiops-stage` holds b"2"."""
    from stream.incident_records import STAGE_HEADER, is_stage2_record

    pairs = list(headers.items()) if isinstance(headers, dict) else headers or []
    assert is_stage2_record(headers) is any(n == STAGE_HEADER and v == b"2" for n, v in pairs)
    assert is_stage2_record(tuple(pairs)) is is_stage2_record(headers)
    from stream.incident_records import is_incident_event  # the census's readers' test: no stage header at all

    assert is_incident_event(headers) is not any(n == STAGE_HEADER for n, _ in pairs)
