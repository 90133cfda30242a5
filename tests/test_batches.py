"""The `alerts` record format: round trip, refusals, the size cap that keeps records under 1 MB, and the
byte bound on what an agent step parses."""

from __future__ import annotations

from types import SimpleNamespace

import orjson
import pytest

from correlator.records import AlertRecord, dict_of_record
from stream.batches import (
    MAX_ALERTS_PER_RECORD, MAX_RECORD_BYTES, BatchError, RecordTooLarge, Segment, decode_batch, encode_batch,
    pack_records, parts_of, steps,
)


def rec(i: int) -> AlertRecord:
    return AlertRecord(f"f{i}", "api/5xx", "firing", "warning", 1_772_420_400.0 + i, None, {"instance": f"i{i}"})


def test_round_trip_keeps_sources_and_records() -> None:
    segments = [Segment((0, 7), [rec(1), rec(2)]), Segment(None, [rec(3)])]
    decoded, received = decode_batch(encode_batch(segments, 123))
    assert decoded == segments and received == 123


def _orjson_batch(segments: list[Segment], received_ms: int) -> bytes:
    """What `encode_batch` wrote before msgspec: a dict per alert through orjson."""
    return orjson.dumps({"received_ms": received_ms, "segments": [
        [*(s.source or (None, None)), [dict_of_record(r) for r in s.records]] for s in segments]})


def test_encoding_is_orjsons_bytes_but_for_a_floats_exponent() -> None:
    odd = [AlertRecord("f\u00e9\n\"\\/\x7f\u2028😀", "a/b", "resolved", "info", 1_772_420_400, 1_772_420_401.5,
                       {"k\t": "v\x00", "": ""}),
           AlertRecord("g", "a/b", "firing", "critical", 0.1, None, {}),
           AlertRecord("h", "a/b", "firing", "critical", 1e16, 1e-7, {}),
           AlertRecord("i", "a/b", "firing", "critical", float("nan"), float("inf"), {})]
    segments = [Segment((3, 2**40), [rec(i) for i in range(50)] + odd[:2]), Segment(None, odd[2:])]
    ours, theirs = encode_batch(segments[:1], 7), _orjson_batch(segments[:1], 7)
    assert ours == theirs
    ours, theirs = encode_batch(segments, 7), _orjson_batch(segments, 7)
    assert ours != theirs and ours.replace(b"e16", b"e+16") == theirs  # NaN and infinity: null on both
    assert orjson.loads(ours) == orjson.loads(theirs)
    readable = [segments[0], Segment(None, odd[2:3])]  # a NaN time is refused on the way in, as before
    assert decode_batch(encode_batch(readable, 7)) == decode_batch(_orjson_batch(readable, 7)) == (readable, 7)


def test_one_plain_alert_is_accepted() -> None:
    body = b'{"fingerprint": "x", "service": "s", "symptom": "y", "starts_at": 1.0}'
    [segment], received = decode_batch(body)
    assert segment.source is None and segment.records[0].key == "s/y" and received is None


@pytest.mark.parametrize(("body", "reason"), [
    (b"\xff not json", "malformed JSON"),
    (b"[1, 2]", "expected a JSON object"),
    (b'{"segments": [[0, 1, [{"f": "x"}]]]}', "bad segment"),
    (b'{"hello": 1}', "not an Alert"),
    # any producer can write to `alerts`: fields of the wrong type are refused here, not met by the engine
    (b'{"segments": [[0, 1, [{"f": "x", "k": "a/b", "s": "firing", "v": "warning", "t": "noon", "e": null, '
     b'"l": {}}]]]}', "of type"),
    (b'{"segments": [[0, 1, [{"f": "x", "k": "a/b", "s": "firing", "v": "warning", "t": 1, "e": null, '
     b'"l": {"n": 1}}]]]}', "of type"),
    (b'{"segments": [[0, 1, [{"f": 7, "k": "a/b", "s": "firing", "v": "warning", "t": 1, "e": null, '
     b'"l": {}}]]]}', "of type"),
    (b'{"segments": [["0", 1, []]]}', "non-negative integers"),
    (b'{"segments": [[0, -1, []]]}', "non-negative integers"),
    (b'{"segments": [[0, true, []]]}', "non-negative integers"),
    (b'{"segments": [], "received_ms": "now"}', "received_ms"),
])
def test_bad_records_are_refused_with_a_reason(body: bytes, reason: str) -> None:
    with pytest.raises(BatchError, match=reason):
        decode_batch(body)


def test_pack_records_caps_alerts_per_record_in_order() -> None:
    segments = [Segment((0, i), [rec(i)] * n) for i, n in enumerate([400, 400, 400, 1000, 10])]
    packed = pack_records(segments, limit=1000)
    assert [[s.source for s in chunk] for chunk in packed] == [[(0, 0), (0, 1)], [(0, 2)], [(0, 3)], [(0, 4)]]
    assert all(sum(len(s.records) for s in chunk) <= 1000 for chunk in packed)
    assert pack_records([]) == []


def test_pack_records_caps_bytes_per_record_given_sizes() -> None:
    segments = [Segment((0, i), [rec(i)]) for i in range(4)]
    packed = pack_records(segments, sizes=[500_000, 300_000, 200_000, 950_000], max_bytes=900_000)
    assert [[s.source for s in chunk] for chunk in packed] == [[(0, 0), (0, 1)], [(0, 2)], [(0, 3)]]


def fat(i: int, label_bytes: int) -> AlertRecord:
    return AlertRecord(f"f{i}", "api/5xx", "firing", "warning", 1.0, None, {"blob": "x" * label_bytes})


@pytest.mark.parametrize(("label_bytes", "alerts"), [(10, 3000), (1200, 1000), (1200, 2500), (300_000, 5)])
def test_parts_of_a_raw_record_each_fit_an_alerts_record(label_bytes: int, alerts: int) -> None:
    records = [fat(i, label_bytes) for i in range(alerts)]
    body = alerts * (label_bytes + 60)  # what such alerts take as generic JSON
    parts = parts_of(records, body, alerts)
    assert [r for part, _ in parts for r in part] == records, "in order, none lost"
    for part, bound in parts:
        encoded = len(encode_batch([Segment((0, 0), part)], 0))
        assert len(part) <= MAX_ALERTS_PER_RECORD and encoded <= bound + 100 <= MAX_RECORD_BYTES + 100


def test_an_alert_larger_than_a_record_may_be_is_refused() -> None:
    with pytest.raises(RecordTooLarge, match="larger than an alerts record may be"):
        parts_of([fat(0, 10), fat(1, 1_200_000)], 1_200_200, 2)


def event(size: int, tag: int) -> SimpleNamespace:
    """The shape `steps` reads of a Faust event: its message's value."""
    return SimpleNamespace(message=SimpleNamespace(value=b"x" * size), tag=tag)


@pytest.mark.parametrize(("sizes", "limit", "expected"), [
    ([100, 100, 100, 100], 250, [[0, 1], [2, 3]]),
    ([100, 100, 100], 300, [[0, 1, 2]]),
    ([500, 10, 10], 100, [[0], [1, 2]]),   # a record over the bound is a step of its own, never dropped
    ([10, 500, 10], 100, [[0], [1], [2]]),
    ([100, 100], 0, [[0, 1]]),               # 0: no bound
    ([], 100, []),
])
def test_steps_bound_bytes_per_step_in_order(sizes: list[int], limit: int, expected: list[list[int]]) -> None:
    events = [event(n, i) for i, n in enumerate(sizes)]
    cut = [[e.tag for e in step] for step in steps(events, limit)]
    assert cut == expected
    assert [t for step in cut for t in step] == list(range(len(sizes)))


def test_steps_counts_a_missing_value_as_empty() -> None:
    events = [SimpleNamespace(message=SimpleNamespace(value=None)), event(10, 1)]
    assert [len(s) for s in steps(events, 5)] == [1, 1]
