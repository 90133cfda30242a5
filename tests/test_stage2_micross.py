"""Stage 2 on the labelled MicroSS set and a set built from it: the F1 reached must not drop, and overlapping
faults (of two renamed systems, or of one system in two clusters) must not merge.

Measured (benchmarks/RESULTS.md, `python benchmarks/accuracy_rca.py`), stage 1 in quiet-gap mode: with
topology.json, gap 120 s, 2 hops, precision 0.990, recall 0.986, F1 0.988; labels only F1 0.979 (0.947 and 0.938
with the old 10-minute continuation window). The floors sit a little under those figures. Stage 1 alone scores
F1 0.065 here (tests/test_replay.py).
"""

from __future__ import annotations

import sys
from collections import Counter
from collections.abc import Hashable, Iterable
from pathlib import Path

import pytest

from correlator.config import CorrelationConfig
from correlator.replay import replay
from correlator.scoring import PairwiseScore, pairwise_score
from correlator.stage2 import GroupingConfig
from correlator.topology import parse_topology

from .paths import MICROSS, ROOT

sys.path.insert(0, str(ROOT / "benchmarks"))
import accuracy_rca  # noqa: E402
import rca_sets  # noqa: E402


@pytest.fixture(scope="module")
def base() -> accuracy_rca.DataSet:
    return accuracy_rca.load_micross()


def score(data: accuracy_rca.DataSet, topology: bool, config: CorrelationConfig | None = None) -> PairwiseScore:
    topo = parse_topology(data.topology, max_hops=2) if topology and data.topology else None
    report = replay(data.alerts, config or CorrelationConfig(), grouping=GroupingConfig(), topology=topo)
    assert report.parents is not None
    members = [fp for p in report.parents for fp in p.members]
    assert len(members) == len(set(members)) == len(data.truth)  # every alert in exactly one parent
    return pairwise_score({fp: p.id for p in report.parents for fp in p.members}, data.truth)


def test_f1_with_the_topology_does_not_drop(base: accuracy_rca.DataSet) -> None:
    s = score(base, topology=True)
    assert s.f1 >= 0.97 and s.precision >= 0.97 and s.recall >= 0.96
    # at most ~1.67 parents per fault: measured 187 for 147 before issue 17's third round, 222 after it (a child that
    # shares only a host with a cause joins it only when it starts with it; a lone alert bridges first_gap, 90 s),
    # 242 since its fifth (a topology path relates only a child that starts with the cause, and never merges two;
    # recall 0.977 -> 0.967, F1 0.984 -> 0.978, still above 0.971 without the topology), 253 since its sixth (a child
    # starting alone long after a cause's reach opens its own parent: 11 such stragglers of MicroSS's faults, F1
    # 0.9784 -> 0.9776; on the noise sets most such children are background noise)
    assert s.groups <= 260


def test_f1_labels_only_does_not_drop(base: accuracy_rca.DataSet) -> None:
    s = score(base, topology=False)
    assert s.f1 >= 0.96 and s.precision >= 0.97


def test_overlapping_unrelated_faults_stay_apart(base: accuracy_rca.DataSet) -> None:
    """MicroSS plus a renamed copy of the system whose faults overlap the originals: time alone merges them."""
    both = accuracy_rca.overlaid(base)
    time_only = pairwise_score(accuracy_rca.time_only(both.alerts, 120.0), both.truth)
    assert time_only.precision < 0.55  # every fault merged with its overlapping twin
    s = score(both, topology=True)
    assert s.f1 >= 0.93 and s.precision >= 0.92


def test_one_system_in_two_clusters_failing_at_once_stays_apart(base: accuracy_rca.DataSet) -> None:
    """Issue 17: the same services in clusters a and b, faults 20 s apart; only the scope tells them apart."""
    both = rca_sets.two_clusters(base)
    baseline = pairwise_score(accuracy_rca.time_only(both.alerts, 60.0, scoped=True), both.truth)
    s = score(both, topology=False)
    assert s.f1 >= 0.95 and s.f1 >= baseline.f1
    assert s.precision >= 0.97  # before scopes were in the key: 0.29 on the held-aside concurrent set


def test_the_data_set_is_where_the_tests_expect_it() -> None:
    assert (MICROSS / "topology.json").exists() and Path(rca_sets.MICROSS) == MICROSS


def test_background_noise_is_not_chained_into_causes(base: accuracy_rca.DataSet) -> None:
    """Issue 17's second round, on the tuning variant (seed 101, never a scoring set): MicroSS with an alert a
    minute of background noise between faults. Before onset proximity and the key's background rate stage 2
    scored 0.743 here (noise glued into stage-1 incidents, and causes chained on by noise sharing a service);
    measured 0.882 after. The floor sits a little under it. The background cap is off by default (a recovered
    stream split incidents the replay kept whole with it on), so it is set here."""
    noisy = rca_sets.noisy(base, seed=rca_sets.TUNING["noise"][0])
    assert score(noisy, topology=False, config=CorrelationConfig(background_factor=0.1)).f1 >= 0.87


def test_the_error_reader_charges_every_wrong_pair_to_one_mechanism(base: accuracy_rca.DataSet) -> None:
    """benchmarks/rca_errors.py (issue 17's error reading, development seeds only): its counts add up to the wrongly
    merged and wrongly split pairs of the grouping, on rca-micross and on a development noise set."""
    import rca_errors

    for data in (base, rca_sets.noisy(base, seed=rca_sets.DEVELOPMENT["noise"][0], during_faults=True)):
        b = rca_errors.breakdown(data)
        report = replay(data.alerts, CorrelationConfig(), grouping=GroupingConfig())
        assert report.parents is not None
        group = {fp: p.id for p in report.parents for fp in p.members}
        right = _pairs([(group[fp], fault) for fp, fault in data.truth.items()])
        assert sum(b.merged.values()) == _pairs([group[fp] for fp in data.truth]) - right
        assert sum(b.split.values()) == _pairs(list(data.truth.values())) - right
        assert b.f1 == pairwise_score(group, data.truth).f1
    assert any(kind.startswith("stage 2: noise joined") for kind in b.merged)


def _pairs(keys: Iterable[Hashable]) -> int:
    return sum(n * (n - 1) // 2 for n in Counter(keys).values())
