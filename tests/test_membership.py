"""The rule of `correlator.membership`: a worker outside its consumer group holds its pages after `hold_after_s` and
recovers after `recover_after_s` of the broker answering; fixed clocks, no broker."""

from __future__ import annotations

import pytest

from correlator.membership import AbsencePolicy, GroupAbsence, Membership, Standing

POLICY = AbsencePolicy(hold_after_s=10.0, recover_after_s=90.0)
IN = Membership(True, "generation 3: 4 partitions assigned")
OUT = Membership(False, "looking for the group coordinator")
OUT_DARK = Membership(False, "looking for the group coordinator", broker_answers=False)
UNKNOWN = Membership(None, "consumer not started")


def run(looks: list[tuple[float, Membership]], policy: AbsencePolicy = POLICY) -> list[Standing]:
    rule = GroupAbsence(policy)
    return [rule.observe(facts, now) for now, facts in looks]


@pytest.mark.parametrize(("looks", "outside", "trusted", "recover"), [
    # a member: nothing to say
    ([(0, IN), (100, IN)], 0.0, True, False),
    # a rejoin of a normal broker restart (5-8 s in the chaos soaks): never held, never restarted
    ([(0, IN), (1, OUT), (5, OUT), (8, OUT), (9, IN)], 0.0, True, False),
    ([(0, IN), (1, OUT), (9, OUT)], 8.0, True, False),
    # the bound itself still pages; past it, held
    ([(0, OUT), (10, OUT)], 10.0, True, False),
    ([(0, OUT), (10.5, OUT)], 10.5, False, False),
    # rejoin41's worker: outside for good with the broker answering; restarted past 90 s of it
    ([(float(t), OUT) for t in range(0, 91)], 90.0, False, False),
    ([(float(t), OUT) for t in range(0, 92)], 91.0, False, True),
    # a broker outage is everyone's: its seconds do not count towards the restart (but pages are held)
    ([(float(t), OUT_DARK) for t in range(0, 300)], 299.0, False, False),
    ([(float(t), OUT_DARK) for t in range(0, 100)] + [(float(t), OUT) for t in range(100, 191)], 190.0, False,
     False),
    ([(float(t), OUT_DARK) for t in range(0, 100)] + [(float(t), OUT) for t in range(100, 192)], 191.0, False,
     True),
    # a broker that flaps: the seconds between two answered looks add up across its outages (9 per 10 s up)
    ([(float(t), OUT if t % 20 < 10 else OUT_DARK) for t in range(0, 200)], 199.0, False, False),
    ([(float(t), OUT if t % 20 < 10 else OUT_DARK) for t in range(0, 202)], 201.0, False, True),
    # back in the group: trusted again at once, and a new absence starts from 0
    ([(0, OUT), (50, OUT), (51, IN), (52, OUT), (55, OUT)], 3.0, True, False),
    # nothing known (the consumer not started) neither starts nor ends an absence
    ([(0, UNKNOWN), (100, UNKNOWN)], 0.0, True, False),
    ([(0, OUT), (5, UNKNOWN), (20, UNKNOWN)], 20.0, False, False),
])
def test_standing(looks: list[tuple[float, Membership]], outside: float, trusted: bool, recover: bool) -> None:
    last = run(looks)[-1]
    assert (last.outside_s, last.trusted, last.recover) == (outside, trusted, recover)


def test_the_answered_seconds_and_the_state_are_reported() -> None:
    last = run([(0, OUT_DARK), (4, OUT_DARK), (5, OUT), (7, OUT)])[-1]
    assert last.answered_s == 2.0 and last.state == "looking for the group coordinator"


def test_the_look_that_ends_an_absence_says_how_long_it_lasted() -> None:
    assert [s.ended_s for s in run([(0, IN), (1, OUT), (50, OUT), (52, IN), (53, IN)])] == [0.0, 0.0, 0.0, 51.0, 0.0]


def test_recover_after_0_never_restarts() -> None:
    last = run([(float(t), OUT) for t in range(0, 1000, 10)], AbsencePolicy(10.0, 0.0))[-1]
    assert not last.trusted and not last.recover


def test_hold_after_0_holds_at_once() -> None:
    assert [s.trusted for s in run([(0, IN), (1, OUT), (1.5, OUT), (2, IN)], AbsencePolicy(0.0, 90.0))] == [
        True, True, False, True]
