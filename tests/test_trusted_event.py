"""`correlator.models.trusted_event`, which `event_of` builds the engine's events with: each event is the model
the validated constructor makes of the same fields (equal, same field order and value types, same bytes on
`incidents`), on every event of the lab storm and rca-micross."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from correlator.config import DEFAULT_CONFIG
from correlator.engine import Correlator
from correlator.models import IncidentEvent, trusted_event
from correlator.records import record_of
from stream.commands.replay import read_alerts
from stream.incident_records import encode_incident_event

from .paths import LAB_STORM, MICROSS


def _events(path: Path) -> Iterator[IncidentEvent]:
    records = [record_of(a) for a in read_alerts(path)]
    engine = Correlator(DEFAULT_CONFIG)
    for i in range(0, len(records), 50):
        yield from engine.ingest(records[i:i + 50])
        if i % 500 == 0:
            yield from engine.flush_idle()
    yield from engine.advance(engine.watermark + 86400)
    yield from engine.finish()


@pytest.mark.parametrize("path", [LAB_STORM, MICROSS / "alerts.ndjson"], ids=["lab", "micross"])
def test_the_engines_events_are_the_validated_models(path: Path) -> None:
    if not path.exists():
        pytest.skip(f"{path} is not here")  # rca-micross lives in the shared datasets
    kinds: set[str] = set()
    count = 0
    for ev in _events(path):
        validated = IncidentEvent.model_validate(dict(ev.__dict__))
        assert validated == ev
        assert [(k, type(v)) for k, v in ev.__dict__.items()] == [(k, type(v)) for k, v in validated.__dict__.items()]
        assert ev.model_fields_set == validated.model_fields_set
        assert encode_incident_event(ev) == encode_incident_event(validated)
        assert ev.model_dump(mode="json") == validated.model_dump(mode="json")
        assert ev.model_copy(update={"seq": ev.seq + 1}) == validated.model_copy(update={"seq": ev.seq + 1})
        kinds.add(ev.kind)
        count += 1
    assert count > 10 and kinds >= {"opened", "updated"} and kinds & {"resolved", "expired"}


def test_a_field_out_of_order_is_caught_by_the_comparison() -> None:
    """What the test above compares would see an event_of that listed two fields in another order."""
    ev = next(_events(LAB_STORM))
    fields = dict(ev.__dict__)
    swapped = {"incident_id": fields.pop("incident_id"), **fields}
    other = trusted_event(swapped)
    validated = IncidentEvent.model_validate(swapped)
    assert other == validated  # pydantic's equality does not see the order ...
    assert encode_incident_event(other) != encode_incident_event(validated)  # ... the bytes on `incidents` do
