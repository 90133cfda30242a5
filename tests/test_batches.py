"""The `alerts` record format: round trip, refusals, and the size cap that keeps records under 1 MB."""

from __future__ import annotations

import pytest

from correlator.records import AlertRecord
from stream.batches import BatchError, Segment, decode_batch, encode_batch, pack_records


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
