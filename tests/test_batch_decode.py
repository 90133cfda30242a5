"""The typed decode of `alerts` records (`stream.batches.decode_batch`) against the checked path it falls back to
(`_decode_checked`): on generated records, well-formed and damaged, the same segments (times of the same
Python types) or the same refusal."""

from __future__ import annotations

import json
from typing import Any

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from stream.batches import BatchError, Segment, _decode_checked, decode_batch

FIELDS = ("f", "k", "s", "v", "t", "e", "l")
GOOD: dict[str, Any] = {"f": "fp", "k": "api/5xx", "s": "firing", "v": "warning", "t": 1772420400.5, "e": None,
                        "l": {"instance": "i1"}}

# Values of every JSON type, including the edges where parsers differ: bools among numbers, integers past
# 2**64 (orjson reads them as floats), negative and large offsets, nested containers.
ANY_JSON = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2**70), max_value=2**70) | st.floats(allow_nan=False,
                                                                                             allow_infinity=False)
    | st.text(max_size=4),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3),
    max_leaves=6,
)


def outcome(decode: Any, raw: bytes) -> Any:
    """What a decoder makes of `raw`: its segments with the types of their times, or its refusal."""
    try:
        segments, received = decode(raw)
    except BatchError as exc:
        return ("refused", str(exc))
    return ("ok", received, type(received),
            [(s.source, s.records, [(type(r.starts_at), type(r.ends_at)) for r in s.records]) for s in segments])


@st.composite
def alert(draw: st.DrawFn) -> dict[str, Any]:
    """A record's alert: well-formed, or with fields dropped, retyped or added."""
    out = dict(GOOD)
    out["t"] = draw(st.integers(min_value=0, max_value=2**66) | st.floats(min_value=0, max_value=2e9))
    out["e"] = draw(st.none() | st.floats(min_value=0, max_value=2e9) | st.integers(min_value=0, max_value=2**40))
    out["l"] = draw(st.dictionaries(st.text(max_size=3), st.text(max_size=3), max_size=3))
    damaged = draw(st.integers(min_value=0, max_value=7)) == 0  # mostly well-formed: the typed path must accept
    for name in draw(st.lists(st.sampled_from(FIELDS), min_size=1, max_size=2)) if damaged else ():
        if draw(st.booleans()):
            out.pop(name, None)
        else:
            out[name] = draw(ANY_JSON)
    if draw(st.integers(min_value=0, max_value=3)) == 0:
        out[draw(st.text(max_size=2))] = draw(ANY_JSON)
    return out


@st.composite
def record(draw: st.DrawFn) -> bytes:
    """An `alerts` record value: segments of alerts, sources and `received_ms`, sometimes damaged."""
    source = st.tuples(st.integers(min_value=-1, max_value=2**65), st.integers(min_value=-1, max_value=2**65))
    odd = st.tuples(ANY_JSON, ANY_JSON)
    segments = draw(st.lists(st.tuples(st.one_of(source, source, source, st.just((None, None)), odd),
                                       st.lists(alert(), max_size=4)), max_size=3))
    doc: dict[str, Any] = {"segments": [[p, o, alerts] for (p, o), alerts in segments]}
    if draw(st.booleans()):
        doc["received_ms"] = draw(st.integers(min_value=0, max_value=2**45) | ANY_JSON)
    if draw(st.integers(min_value=0, max_value=9)) == 0:
        doc["segments"] = draw(ANY_JSON)
    return json.dumps(doc).encode()  # the standard library writes integers of any size, orjson does not


@settings(max_examples=600, deadline=None)
@given(record())
def test_typed_decode_gives_what_the_checked_path_gives(raw: bytes) -> None:
    assert outcome(decode_batch, raw) == outcome(_decode_checked, raw)


def test_damaged_bytes_and_other_shapes_agree() -> None:
    good = orjson.dumps({"segments": [[0, 3, [GOOD, GOOD]]], "received_ms": 5})
    bodies = [good, good[:-1], good + b"x", b"", b"null", b"[]", b'{"segments": null}', b'{"segments": [[0, 3]]}',
              good.replace(b'"t":', b'"t":1,"t":'), good.replace(b'"l":{', b'"l":{"a":"1","a":"2",'),
              good.replace(b'"f":"fp"', b'"f":"\\ud800"'), good.replace(b'"fp"', b'"f\xffp"'),
              b'{"fingerprint": "x", "service": "s", "symptom": "y", "starts_at": 1.0}',
              good.replace(b'"received_ms":5', b'"received_ms":5.5'),
              good.replace(b'"received_ms":5', b'"received_ms":true')]
    for raw in bodies:
        assert outcome(decode_batch, raw) == outcome(_decode_checked, raw), raw
    segments, received = decode_batch(good)
    assert received == 5 and segments == [Segment((0, 3), segments[0].records)] and len(segments[0].records) == 2
