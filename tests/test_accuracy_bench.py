"""The accuracy benchmark's pure parts: the storm generator's knobs, Alertmanager's timers scaled, and how
its notifications are read back into groups and pages."""

from __future__ import annotations

import sys
from collections import defaultdict
from typing import Any

import pytest

from .paths import ROOT

sys.path.insert(0, str(ROOT / "benchmarks"))

from accuracy import am_config, read_notifications, stream_of  # noqa: E402
from storms import StormSpec, generate, generate_timed  # noqa: E402


def _firing_spans(spec: StormSpec) -> dict[str, list[float]]:
    spans: dict[str, list[float]] = defaultdict(list)
    for record, storm in generate(spec):
        if record["status"] == "firing":
            spans[storm].append(record["starts_at"])
    return spans


def test_straddle_off_by_default_leaves_the_stream_unchanged() -> None:
    base = list(generate(StormSpec(alerts=2000, seed=5)))
    explicit = list(generate(StormSpec(alerts=2000, seed=5, straddle_share=0.0, unresolved_share=0.0)))
    assert base == explicit
    assert base != list(generate(StormSpec(alerts=2000, seed=5, straddle_share=0.5)))


def test_straddling_storms_cross_the_hour() -> None:
    def crossing(share: float) -> int:
        spans = _firing_spans(StormSpec(alerts=20_000, seed=2, straddle_share=share))
        return sum(1 for ts in spans.values() if len(ts) > 1 and min(ts) // 3600 != max(ts) // 3600)

    assert crossing(0.3) > 2 * crossing(0.0)


def test_silent_storms_send_no_resolutions_and_arrivals_are_ordered() -> None:
    resolved, storms = set(), set()
    last = 0.0
    for arrival, record, storm in generate_timed(StormSpec(alerts=5000, seed=3, unresolved_share=0.4)):
        assert arrival >= last
        last = arrival
        storms.add(storm)
        if record["status"] == "resolved":
            resolved.add(storm)
    silent = len(storms - resolved) / len(storms)
    assert 0.25 < silent < 0.55


def test_cut_stream_keeps_whole_storms_only() -> None:
    s = stream_of(4, "resolving", hours=0.5)
    start = StormSpec().start
    first: dict[str, float] = {}
    for arrival, record in s.timed:
        first.setdefault(s.truth[record["fingerprint"]], arrival)
    assert first and all(t < start + 1800 for t in first.values())
    fired = {r["fingerprint"] for _, r in s.timed if r["status"] == "firing"}
    ended = {r["fingerprint"] for _, r in s.timed if r["status"] == "resolved"}
    assert fired == ended  # every kept alert's resolution was kept too


def test_alertmanager_defaults_scaled() -> None:
    route = am_config("http://x", 60.0)["route"]
    assert (route["group_wait"], route["group_interval"], route["repeat_interval"]) == ("500ms", "5000ms",
                                                                                         "240000ms")
    assert route["group_by"] == ["service", "alertname"]


def _note(gk: str, *alerts: tuple[str, str]) -> tuple[float, dict[str, Any]]:
    return 0.0, {"groupKey": gk, "alerts": [{"annotations": {"fingerprint": fp}, "startsAt": "t", "status": st}
                                            for fp, st in alerts]}


@pytest.mark.parametrize(("notes", "episodes", "pages", "firing", "repeats"), [
    ("one group, two updates", [{"a", "b", "c"}], 3, 2, 0),
    ("resolved then again", [{"a", "b"}, {"c"}], 4, 2, 0),
    ("two keys", [{"a"}, {"x"}], 2, 2, 0),
])
def test_read_notifications(notes: str, episodes: list[set[str]], pages: int, firing: int, repeats: int) -> None:
    streams = {
        "one group, two updates": [_note("k", ("a", "firing")), _note("k", ("a", "firing"), ("b", "firing")),
                                   _note("k", ("a", "resolved"), ("b", "resolved"), ("c", "resolved"))],
        "resolved then again": [_note("k", ("a", "firing"), ("b", "firing")),
                                _note("k", ("a", "resolved"), ("b", "resolved")),
                                _note("k", ("c", "firing")), _note("k", ("c", "resolved"))],
        "two keys": [_note("k", ("a", "firing")), _note("j", ("x", "firing"))],
    }[notes]
    g = read_notifications([(float(n), note) for n, (_, note) in enumerate(streams)])
    groups: dict[str, set[str]] = defaultdict(set)
    for fp, group in g.episode_of.items():
        groups[group].add(fp)
    assert sorted(map(sorted, groups.values())) == sorted(map(sorted, episodes))
    assert (g.notifications, g.firing_notifications, g.repeats) == (pages, firing, repeats)
    assert len(set(g.group_key_of.values())) == len({n["groupKey"] for _, n in streams})


def test_unchanged_notification_is_a_repeat() -> None:
    same = _note("k", ("a", "firing"))
    g = read_notifications([(0.0, same[1]), (1.0, same[1])])
    assert g.repeats == 1 and g.notifications == 2
