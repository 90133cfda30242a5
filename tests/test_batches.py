"""The `alerts` record format: round trip, refusals, the size cap that keeps records under 1 MB, and the
byte bound on what an agent step parses."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from correlator.records import AlertRecord
from stream.batches import BatchError, Segment, decode_batch, encode_batch, pack_records, steps


def rec(i: int) -> AlertRecord:
    return AlertRecord(f"f{i}", "api/5xx", "firing", "warning", 1_772_420_400.0 + i, None, {"instance": f"i{i}"})


def test_round_trip_keeps_sources_and_records() -> None:
    segments = [Segment((0, 7), [rec(1), rec(2)]), Segment(None, [rec(3)])]
    decoded, received = decode_batch(encode_batch(segments, 123))
    assert decoded == segments and received == 123


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
