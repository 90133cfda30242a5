"""Stage 2, issue 17 (session 41, casc42): calls climbing, learnt late. stock fails; cart's calls into pay fail 20 s later
(a trace error of pay's: its service, its callee pay-1), before any group knows that pay's own calls fail, so nothing
relates it to stock's group and it opens its own; at 35 s pay's calls into stock fail (pay-2 named as a caller in
stock's group). The group of failed calls into pay is then folded into stock's (`GroupingConfig.climb_late_s`):
stock -> pay -> cart is one failure climbing the call graph, one page."""

from __future__ import annotations

from dataclasses import replace

from correlator.models import IncidentEvent
from correlator.stage2 import GroupingConfig, Relation

from .test_stage2 import CFG, Spec, _event, events_of, partition, run

ON = replace(CFG, climb_late_s=120)
OFF = replace(ON, climb_late_s=0)


def scene(piece_start: float = 20, piece_end: float = 60, caller_at: float = 35, caller_for: float = 10,
          extra: list[Spec] | None = None) -> list[IncidentEvent]:
    """`st` stock's own symptom (0-120 s), `piece` cart's failed calls into pay, `h` pay's failed call into stock. No
    service here is in test_stage2's `SHOP` (the restart scene runs with that file), so no path relates them."""
    specs: list[Spec] = [
        ("st", "stock/latency", 0, 120, {"instance": ["stock-1"]}),
        ("piece", "pay/trace:500", piece_start, piece_end, {"caller": ["cart-1"], "callee": ["pay-1"]}),
        ("h", "stock/trace:500", caller_at, caller_at + caller_for, {"caller": ["pay-2"], "callee": ["stock-1"]}),
        *(extra or []),
    ]
    return events_of(specs)


def test_a_group_of_calls_into_a_service_folds_into_the_cause_its_calls_failed_into() -> None:
    _, out = run(scene(), ON)
    assert partition(out) == "h piece st"
    merged = next(a for a in out.assignments if a.child_id == "piece" and a.relation is Relation.MERGED)
    assert merged.via == "h"
    assert "its failed calls went into pay, whose own calls failed in" in merged.explanation
    assert "h (stock/trace:500) named pay-2 as a caller" in merged.explanation


def test_off_the_calls_into_pay_stay_apart() -> None:
    _, out = run(scene(), OFF)
    assert partition(out) == "h st|piece"
    assert GroupingConfig().climb_late_s == 0  # off by default: main's behaviour


def update_scene() -> list[IncidentEvent]:
    """Most often pay's failed call is a later alert of stock's trace errors, which opened with another caller: h opens
    at 5 s naming web-1, and its alert at 50 s names pay-2. (x, mail's own metric at 40 s, moves event time on so that
    the piece is placed before that alert comes.)"""
    return sorted([
        *events_of([("st", "stock/latency", 0, 120, {"instance": ["stock-1"]}),
                    ("piece", "pay/trace:500", 20, 60, {"caller": ["cart-1"], "callee": ["pay-1"]}),
                    ("x", "mail/cpu", 40, 40, {"instance": ["mail-1"]})]),
        _event("h", "stock/trace:500", 5, 5, 1, "opened", {"caller": ["web-1"], "callee": ["stock-1"]}),
        _event("h", "stock/trace:500", 5, 50, 2, "updated", {"caller": ["web-1", "pay-2"], "callee": ["stock-1"]}),
    ], key=lambda e: e.emitted_at)


def test_the_caller_name_that_comes_with_an_update_folds_too() -> None:
    events = update_scene()
    assert partition(run(events, ON)[1]) == "h piece st|x"
    assert partition(run(events, OFF)[1]) == "h st|piece|x"


def test_a_piece_that_began_before_the_cause_stays_apart() -> None:
    """A failure climbs after its cause fails: calls into pay failing before stock's group began are no step of it."""
    events = events_of([("piece", "pay/trace:500", 0, 60, {"caller": ["cart-1"], "callee": ["pay-1"]}),
                        ("st", "stock/latency", 15, 120, {"instance": ["stock-1"]}),
                        ("h", "stock/trace:500", 35, 45, {"caller": ["pay-2"], "callee": ["stock-1"]})])
    assert partition(run(events, ON)[1]) == "h st|piece"


def test_a_group_with_a_symptom_of_its_own_is_no_piece() -> None:
    """pay failing on its own (a latency symptom, no failed call) is a root of its own: not folded by this rule."""
    events = events_of([("st", "stock/latency", 0, 120, {"instance": ["stock-1"]}),
                        ("piece", "pay/latency", 20, 60, {"instance": ["pay-1"]}),
                        ("h", "stock/trace:500", 35, 45, {"caller": ["pay-2"], "callee": ["stock-1"]})])
    assert partition(run(events, ON)[1]) == "h st|piece"


def test_not_when_another_cause_knows_a_caller_of_that_service() -> None:
    """pay's calls failed into cache too (its group began after the piece, so nothing folds there): which of the two
    the calls into pay climbed from, nothing says."""
    extra: list[Spec] = [("c", "cache/latency", 25, 120, {"instance": ["cache-1"]}),
                         ("ch", "cache/trace:500", 30, 40, {"caller": ["pay-3"], "callee": ["cache-1"]})]
    assert partition(run(scene(extra=extra), ON)[1]) == "c ch|h st|piece"


def test_not_past_the_window_after_the_piece_s_latest_alert() -> None:
    """pay-2 named 10 s after the piece's latest alert: within 15 s it folds, not within 5 s."""
    events = scene(piece_end=25, caller_at=35, caller_for=0)
    assert partition(run(events, replace(ON, climb_late_s=5))[1]) == "h st|piece"
    assert partition(run(events, replace(ON, climb_late_s=15))[1]) == "h piece st"


def test_a_cause_seen_only_from_calls_learns_nothing_here() -> None:
    """A group opened by a trace error (stock seen failing from web's calls, as MicroSS's faults open) is no root of its
    own: pay-2 named there folds nothing."""
    events = events_of([("st", "stock/trace:500", 0, 120, {"caller": ["web-1"], "callee": ["stock-1"]}),
                        ("piece", "pay/trace:500", 20, 60, {"caller": ["cart-1"], "callee": ["pay-1"]}),
                        ("h", "stock/trace:500", 35, 45, {"caller": ["pay-2"], "callee": ["stock-1"]})])
    assert partition(run(events, ON)[1]) == "h st|piece"
