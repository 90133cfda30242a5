"""Stage 2's routing records decoded in one msgspec pass (`stream.incident_records.decode_events_fast`): on every
event of the lab storm and rca-micross the same models as pydantic's validation of the same bytes (equal, same
field order and value types, same fields set, same bytes again), and on values stage 1 never writes either the
same models or a refusal that hands the value to pydantic (so `_decode_routed` accepts and refuses exactly as
before)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from pydantic import TypeAdapter, ValidationError

from correlator.config import DEFAULT_CONFIG
from correlator.engine import Correlator
from correlator.models import IncidentEvent
from correlator.records import record_of
from stream.commands.replay import read_alerts
from stream.incident_records import decode_events_fast, encode_incident_event
from stream.stage2_agent import RoutedError, _decode_routed

from .paths import LAB_STORM, MICROSS

_MODEL = TypeAdapter(list[IncidentEvent])


def _events(path: Path) -> Iterator[IncidentEvent]:
    records = [record_of(a) for a in read_alerts(path)]
    engine = Correlator(DEFAULT_CONFIG)
    for i in range(0, len(records), 50):
        yield from engine.ingest(records[i:i + 50])
        if i % 500 == 0:
            yield from engine.flush_idle()
    yield from engine.advance(engine.watermark + 86400)
    yield from engine.finish()


def _encoded(ev: IncidentEvent) -> bytes | str:
    try:
        return encode_incident_event(ev)
    except TypeError as exc:  # an integer past 64 bits, which the model accepts: it fails alike on both
        return str(exc)


def _same(fast: list[IncidentEvent], model: list[IncidentEvent]) -> None:
    assert repr(fast) == repr(model)  # not ==: a NaN the model reads from a NaN token is not equal to itself
    for a, b in zip(fast, model, strict=True):
        assert [(k, type(v)) for k, v in a.__dict__.items()] == [(k, type(v)) for k, v in b.__dict__.items()]
        assert a.model_fields_set == b.model_fields_set
        assert _encoded(a) == _encoded(b)
        assert repr(a.model_copy(update={"seq": a.seq + 1})) == repr(b.model_copy(update={"seq": b.seq + 1}))


@pytest.mark.parametrize("path", [LAB_STORM, MICROSS / "alerts.ndjson"], ids=["lab", "micross"])
def test_stage_ones_events_decode_to_the_validated_models(path: Path) -> None:
    if not path.exists():
        pytest.skip(f"{path} is not here")  # rca-micross lives in the shared datasets
    values = [encode_incident_event(ev) for ev in _events(path)]
    assert len(values) > 10
    for i in range(0, len(values), 40):  # routing records join a commit's encoded events into an array
        raw = b"[" + b",".join(values[i:i + 40]) + b"]"
        fast = decode_events_fast(raw)
        assert fast is not None, "stage 1's own bytes must take the fast path"
        _same(fast, _MODEL.validate_json(raw))


def _dumps(value: Any) -> bytes:
    return json.dumps(value).encode()  # not orjson: it refuses integers past 64 bits, which a producer may write


def _variants() -> Iterator[tuple[str, bytes]]:
    """One event's value with one field changed, dropped or added, and some arrays around it."""
    base: dict[str, Any] = orjson.loads(encode_incident_event(next(_events(LAB_STORM))))
    odd: list[Any] = [None, True, 0, -1, 1, 3.0, 2.5, 2**70, -(2**70), "", "x", "1.5", [], ["a"], {}, {"a": ["b"]},
                      {"a": "b"}, [1], "opened", "firing", "critical", 1e308]
    for name in base:
        dropped = {k: v for k, v in base.items() if k != name}
        yield f"{name} missing", _dumps([dropped])
        for value in odd:
            yield f"{name}={value!r}", _dumps([{**base, name: value}])
    yield "extra field", _dumps([{**base, "extra": 1}])
    yield "fields in another order", _dumps([dict(reversed(list(base.items())))])
    whole = _dumps(base)
    yield "duplicate key, last wins", b'[{"seq": 999,' + whole[1:] + b"]"
    yield "duplicate key after", whole[:-1].join([b"[", b', "seq": 7}]'])
    yield "NaN token", b'[' + whole.replace(b'"first_seen":', b'"first_seen":NaN,"x":', 1) + b"]"
    yield "empty array", b"[]"
    yield "not an array", whole
    yield "null", b"null"
    yield "malformed", b"[{"
    yield "empty", b""
    yield "two events", b"[" + whole + b"," + whole + b"]"
    yield "one bad of two", b"[" + whole + b"," + _dumps({**base, "seq": 0}) + b"]"


@pytest.mark.parametrize(("case", "raw"), list(_variants()), ids=[c for c, _ in _variants()])
def test_what_the_fast_pass_accepts_the_model_accepts_alike(case: str, raw: bytes) -> None:
    try:
        model: list[IncidentEvent] | None = _MODEL.validate_json(raw)
    except ValidationError:
        model = None
    fast = decode_events_fast(raw)
    if fast is not None:
        assert model is not None, f"{case}: the fast pass accepted what the model refuses"
        _same(fast, model)
    if model is None:
        with pytest.raises(RoutedError):
            _decode_routed(raw)
    else:
        _same(_decode_routed(raw), model)


def test_the_fast_pass_takes_stage_ones_values_and_leaves_the_rest() -> None:
    """The variants above exercise both sides: the fast pass takes stage 1's value and refuses the ones that
    differ in type or leave a field to its default (so the cases compare real decodes, not two refusals)."""
    cases = dict(_variants())
    assert decode_events_fast(cases["two events"]) is not None
    assert decode_events_fast(cases["extra field"]) is not None
    for refused in ("NaN token", "reason missing", "seq=3.0", "first_seen=True", "seq=0", "alert_count=-1", "not an array"):
        assert decode_events_fast(cases[refused]) is None, refused
    assert _MODEL.validate_json(cases["reason missing"])[0].model_fields_set != decode_events_fast(
        cases["two events"])[0].model_fields_set  # type: ignore[index]
