"""`stream.readback`: what a worker wrote, taken by its own readers by the record's bytes instead of decoded again.

A reader must get what decoding its record gives: stage 2's routing records (`route_values`) are kept with
the events stage 1 routed, which must equal `_decode_routed` of their bytes on every event of the lab storm and
rca-micross (same values, field order and types, same bytes again); events the decode would refuse (a float that
is not finite) are not kept."""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path

import pytest

from correlator.config import DEFAULT_CONFIG
from correlator.engine import Correlator
from correlator.models import IncidentEvent, trusted_event
from correlator.records import record_of
from stream.commands.replay import read_alerts
from stream.incident_records import encode_incident_event
from stream.readback import ReadBack, finite_event
from stream.stage2_agent import RoutedError, _decode_routed, route_values

from .paths import LAB_STORM, MICROSS


def _commits(path: Path) -> Iterator[list[IncidentEvent]]:
    """The engine's events on `path` in calls of 50 alerts (with idle flushes, advance and finish), per call."""
    records = [record_of(a) for a in read_alerts(path)]
    engine = Correlator(DEFAULT_CONFIG)
    for i in range(0, len(records), 50):
        yield engine.ingest(records[i:i + 50])
        if i % 500 == 0:
            yield engine.flush_idle()
    yield engine.advance(engine.watermark + 86400)
    yield engine.finish()


def _shape(ev: IncidentEvent) -> list[tuple[str, type]]:
    return [(k, type(v)) for k, v in ev.__dict__.items()]


@pytest.mark.parametrize("path", [LAB_STORM, MICROSS / "alerts.ndjson"], ids=["lab", "micross"])
def test_a_kept_routing_record_is_what_its_decode_gives(path: Path) -> None:
    if not path.exists():
        pytest.skip(f"{path} is not here")  # rca-micross lives in the shared datasets
    count = records = 0
    for events in _commits(path):
        pairs = [(ev, encode_incident_event(ev)) for ev in events]
        for value, kept in route_values(pairs, limit=4096):  # small records: chunk edges are crossed often
            assert kept is not None
            decoded = _decode_routed(value)
            assert decoded == kept
            assert [_shape(e) for e in decoded] == [_shape(e) for e in kept]
            assert [encode_incident_event(e) for e in decoded] == [encode_incident_event(e) for e in kept]
            records += 1
            count += len(kept)
    assert count > 10 and records > 1


def test_an_event_with_a_float_that_is_not_finite_is_decoded_not_kept() -> None:
    ev = next(ev for events in _commits(LAB_STORM) for ev in events)
    for bad in (math.nan, math.inf):
        odd = trusted_event({**ev.__dict__, "last_seen": bad})
        assert not finite_event(odd)
        ((value, kept),) = route_values([(ev, encode_incident_event(ev)), (odd, encode_incident_event(odd))])
        assert kept is None
        with pytest.raises(RoutedError):  # what the record's reader does with it, as before
            _decode_routed(value)
    assert finite_event(ev)


def test_readback_takes_once_and_ages_out_by_bytes() -> None:
    rb: ReadBack[str] = ReadBack(max_bytes=10)
    rb.keep(b"aaaa", "a")
    rb.keep(b"bbbb", "b")
    assert rb.take(bytes(bytearray(b"aaaa"))) == "a"  # equal bytes, another object: as a consumer gets them
    assert rb.take(b"aaaa") is None  # taken once
    rb.keep(b"cccc", "c")  # 8 bytes held (a taken is no longer counted)
    assert rb.take(b"bbbb") == "b"
    rb.keep(b"dddd", "d")
    rb.keep(b"eeee", "e")  # 12 bytes: c, the oldest, ages out untaken
    assert rb.take(b"cccc") is None and rb.take(b"eeee") == "e" and rb.take(b"dddd") == "d"
    assert rb.status() == {"hits": 4, "misses": 2, "held": 0, "bytes": 0, "peak_bytes": 8}
    assert rb.take(None) is None and rb.take(b"") is None


def test_the_same_bytes_kept_twice_are_one_entry() -> None:
    rb: ReadBack[str] = ReadBack(max_bytes=8)
    rb.keep(b"aaaa", "a")
    rb.keep(b"aaaa", "a2")  # a batch folded again regenerates the same bytes
    rb.keep(b"bbbb", "b")
    assert len(rb) == 2
    assert rb.take(b"aaaa") == "a2" and rb.take(b"bbbb") == "b"
