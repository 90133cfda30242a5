"""Stage 1's census after a broker loss (session 39): whole or not at all, and never a record the broker refuses."""

from __future__ import annotations

from correlator.models import Census
from stream.pipeline import CENSUS_MAX_IDS, census_values


def test_a_census_names_each_partition_s_open_incidents_sorted() -> None:
    values = census_values(3, 1_800.0, {1: ["inc-b", "inc-a"], 0: []})
    assert values is not None and [q for q, _ in values] == [0, 1]
    censuses = [Census.model_validate_json(v) for _, v in values]
    assert censuses[1] == Census(source=3, at=1_800.0, open=["inc-a", "inc-b"]) and censuses[0].open == []


def test_a_census_too_large_for_one_record_is_not_said_at_all() -> None:
    """Notify closes what a census does not name, so a census cut short would close open incidents: none is said."""
    many = [f"inc-{i:016x}" for i in range(CENSUS_MAX_IDS + 1)]
    assert census_values(0, 1.0, {0: ["inc-a"], 1: many}) is None
    largest = census_values(0, 1.0, {0: many[:CENSUS_MAX_IDS]})
    assert largest is not None and len(largest[0][1]) < 1_000_000
