"""Labelled alert sets for the generalisation protocol of `accuracy_rca.py`: one to choose parameters on, the rest
to score with those parameters frozen.

* `micross()`: the published MicroSS set (`../shared/datasets/rca-micross`), 147 faults that never overlap.
  **The tuning set**: stage 1's quiet-gap floor and factor and every stage-2 default were chosen on it alone.
* `two_clusters(base)`: MicroSS cut in two halves by fault id (0-73 in cluster `a`, 74-146 in cluster `b`), every
  alert labelled with its cluster, each `b` fault moved to start 20 s after the `a` fault of the same rank. So two
  copies of one system fail at once, with the same service, instance and host names: only the cluster tells
  them apart (issue 17's "A and B failing concurrently").
* `noisy(base)`: MicroSS with background noise between faults (issue 17's wording: outside every fault's span of
  alerts), one alert a minute on average (Poisson) over the recorded timeline (within 15 min of some alert:
  the set skips days between its fault campaigns); `during_faults=True` puts noise inside faults too,
  each a copy of a random real alert's service, symptom and labels at a random time and its own true incident;
  and every alert's start jittered by up to +-10 s while the input keeps the original order, so about half the
  alerts arrive out of order and many behind the allowed lateness.
* `cascades()`: generated multi-cluster cascades over 12 h: three clusters running one 24-service dependency
  graph (instances on hosts), faults arriving every 4 min on average in any cluster (so unrelated faults
  overlap), each raising its root service's alerts, host metrics of the root's host and trace errors of its
  callers up to two hops up (`caller`/`callee` labels), and in 30% of cases the same root and symptom failing
  again 1-20 min after the previous fault ended. A topology file of the graph comes with it.

The shape of each set (rates, shares, seeds) was fixed before any of them was scored and is not tuned: changing
it to flatter the product would defeat the protocol. Each set is built in memory; nothing is written.

Seeds, by role (issue 17's third protocol). SEEN: seeds already scored and looked at, never to be tuned on, usable
as checks and reported as seen: noise 17 and cascades 23 (first round), noise 2027/2029 and cascades 3023/3029
(the held-out seeds of the second round, scored at its end), noise 4409/4421 and cascades 7411/7417 (held out from
the third round to the sixth, scored at the end of each), noise 5507/5521 and cascades 9403/9431 (held out in the
seventh round, scored at its end), noise 5953/5987 and cascades 9811/9857 (held out in the eighth round, scored at
its end), noise 7229/7253 and cascades 8623/8641 (held out in the ninth round, scored at its end), noise 7603/7621
and cascades 8837/8863 (held out in the tenth round, scored at its end), noise 7841/7867 and cascades 8941/8969 (held
out in the eleventh round, scored at its end), noise 8053/8089, cascades 9067/9103 and generated storms 9151 (held
out in the twelfth round, scored at its end), noise 8231/8269, cascades 9199/9227 and generated storms 9173 (held out
in the thirteenth round, scored at its end), noise 8329/8353, cascades 9241/9257 and generated storms 9187 (held out in
the fourteenth and fifteenth rounds, scored at the fifteenth's end), noise 8419/8447, cascades 9281/9311 and generated
storms 9203 (held out in the sixteenth round, scored at its end), noise 8521/8543, cascades 9337/9349 and generated
storms 9221 (held out in the seventeenth round, scored at its end), generated storms seed 7 (scored every round since the first). TUNING: variants built from the tuning set with
declared seeds (noise 101, cascades 201); rule changes are studied and parameters chosen on these and on
`micross()` only. HELD_OUT (eighteenth round): noise 8563/8609, cascades 9391/9439 and generated storms 9239, declared in a commit of their
own before any rule or parameter of that round changed, and generated and scored only after the parameters are frozen.
DEVELOPMENT: noise 6113/6143/6173/6199/6229/6257/6287/6317/6359, cascades
6211/6247/6277/6299/6323/6343/6367/6397/6427 and generated storms 6389/6421/6449/6473, fresh seeds declared before any change of their round, not
scored by `accuracy_rca.py`: the one place where the fourth round read its errors (which pairs were wrongly merged
or split, by which mechanism), beside `micross()` and TUNING. The held-out seeds are scored once, after the freeze.
"""

from __future__ import annotations

import bisect
import csv
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import orjson

from correlator.engine import AlertLike
from correlator.models import Alert
from stream.commands.replay import read_alerts

__all__ = ["DEVELOPMENT", "DEVELOPMENT_TOPOLOGY", "DataSet", "FAMILY_MEAN_TOLERANCE", "HELD_OUT", "MICROSS", "SEEN", "TUNING", "cascades", "micross", "noisy",
           "two_clusters"]

SEEN = {"noise": (17, 2027, 2029, 4409, 4421, 5507, 5521, 5953, 5987, 7229, 7253, 7603, 7621, 7841, 7867, 8053, 8089, 8231, 8269,
                  8329, 8353, 8419, 8447, 8521, 8543),
        "cascades": (23, 3023, 3029, 7411, 7417, 9403, 9431, 9811, 9857, 8623, 8641, 8837, 8863, 8941, 8969, 9067,
                     9103, 9199, 9227, 9241, 9257, 9281, 9311, 9337, 9349),
        "storms": (7, 9151, 9173, 9187, 9203, 9221)}
"""Seeds scored (and looked at) in earlier rounds: never tuned on, reported as seen."""
TUNING = {"noise": (101,), "cascades": (201,)}
"""Seeds of the tuning variants: rule changes are studied and parameters chosen on these (and MicroSS)."""
HELD_OUT = {"noise": (8563, 8609), "cascades": (9391, 9439), "storms": (9239,)}
"""Fresh seeds of the eighteenth round (session 41), declared in a commit of their own before any run of that round;
never generated before its parameters are frozen. The seventeenth round's seeds (noise 8521/8543, cascades 9337/9349,
storms 9221), scored at its end (session 40), are SEEN now. The eighteenth round's run (the variant judged) is
declared in RESULTS.md in a commit of its own before that run.

The eighteenth round's decision rule (the seventeenth's) is the thirteenth's, unchanged (as the fourteenth's and fifteenth's), fixed before any
of its measurements: a rule ships when it lifts the mean F1
(stage 2, without and with the topology file where the set has one) of the family it targets (noise, cascades or
storms) over TUNING and DEVELOPMENT, no development or tuning set of any family falls by more than 0.002 (the
development storms included), no other family's mean falls by more than FAMILY_MEAN_TOLERANCE, and MicroSS x2 and two
clusters fall by at most 0.003. (A fall under 0.002 on one set is within what one glued alert moves.) Storms seeds 7,
9151, 9173, 9187, 9203 and 9221 are reported as seen, never chosen on.

Changed from the twelfth round, and why, before any measurement of this round: "no family's mean falls" at full
precision refused the twelfth round's hop-2 climb (casc22: cascades family +0.008, noise family -0.00003, one
16-alert piece of one development fault). A family-mean fall under FAMILY_MEAN_TOLERANCE is smaller than the per-set
tolerance spread over a family of ten sets and is allowed; the per-set 0.002 still holds on every set. The change was
chosen knowing that case; the held-out seeds above, never generated, are what judges it."""
FAMILY_MEAN_TOLERANCE = 0.0005
"""The most a family's mean F1 other than the target's may fall (thirteenth round's rule, `HELD_OUT`'s docstring)."""
DEVELOPMENT = {"noise": (6113, 6143, 6173, 6199, 6229, 6257, 6287, 6317, 6359),
               "cascades": (6211, 6247, 6277, 6299, 6323, 6343, 6367, 6397, 6427), "storms": (6389, 6421, 6449, 6473)}
"""Development seeds: errors are read here (and on TUNING, MicroSS) only; never scored. 6113/6211 from the fourth
round; 6143/6247 declared for the seventh round (session 31), 6173/6277 for the eighth (session 32), 6199/6299 for
the ninth (session 33), 6229/6323 for the tenth (session 34), 6257/6343 for the eleventh (session 35), 6287/6367 and
storms 6389/6421 for the twelfth (session 36), 6317/6397 and storms 6449 for the thirteenth (session 37), 6359/6427 and storms 6473 for the fourteenth
(session 38), each
before they were first generated."""
DEVELOPMENT_TOPOLOGY = {"cascades": (8101, 8117)}
"""Fresh development seeds of the sixth round (topology paths), declared before they were first generated: checks
of the path rules beside TUNING and DEVELOPMENT; never scored by `accuracy_rca.py`."""

MICROSS = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "rca-micross"


@dataclass(frozen=True, slots=True)
class DataSet:
    """Alerts in input order, truth (fingerprint -> fault), the topology text (if any), and its role."""

    name: str
    alerts: Sequence[AlertLike]
    truth: dict[str, str]
    topology: str | None
    tuning: bool = False


def micross() -> DataSet:
    """The published set: the one parameters are chosen on."""
    alerts = read_alerts(MICROSS / "alerts.ndjson")
    truth = {r["fingerprint"]: r["incident"] for r in csv.DictReader((MICROSS / "truth.csv").open())}
    return DataSet("rca-micross (tuning set)", alerts, truth, (MICROSS / "topology.json").read_text(), tuning=True)


def _alert(a: AlertLike, **changes: object) -> Alert:
    assert isinstance(a, Alert)
    # built anew, not model_copy'd: a copy would keep the original's cached `key`
    return Alert.model_validate({**a.model_dump(), **changes})


def _starts(base: DataSet) -> dict[str, float]:
    first: dict[str, float] = {}
    for a in base.alerts:
        fault = base.truth[a.fingerprint]
        first[fault] = min(first.get(fault, a.starts_at), a.starts_at)
    return first


def two_clusters(base: DataSet) -> DataSet:
    """Two halves of the set as two clusters failing at once (see the module docstring)."""
    first = _starts(base)
    faults = sorted(first, key=lambda f: first[f])
    half = len(faults) // 2
    a_side, b_side = faults[:half], faults[half:]
    shift = {f: 0.0 for f in a_side} | {b: first[a] + 20.0 - first[b] for a, b in zip(a_side, b_side)}
    cluster = {f: "a" for f in a_side} | {f: "b" for f in b_side}
    alerts: list[AlertLike] = []
    for a in base.alerts:
        fault = base.truth[a.fingerprint]
        if fault in shift:  # an odd fault out has no partner: left out
            alerts.append(_alert(a, starts_at=a.starts_at + shift[fault], scope=f"cluster={cluster[fault]}",
                                 labels={**a.labels, "cluster": cluster[fault]}))
    alerts.sort(key=lambda a: a.starts_at)
    truth = {a.fingerprint: base.truth[a.fingerprint] for a in alerts}
    return DataSet("two clusters at once", alerts, truth, base.topology)


def _active(times: list[float], margin_s: float) -> list[tuple[float, float]]:
    """The spans within margin_s of some alert, merged: the recorded parts of a timeline that has days missing."""
    spans: list[tuple[float, float]] = []
    for t in times:
        if spans and t - margin_s <= spans[-1][1]:
            spans[-1] = (spans[-1][0], t + margin_s)
        else:
            spans.append((t - margin_s, t + margin_s))
    return spans


def noisy(base: DataSet, *, seed: int = 17, noise_per_s: float = 1 / 60, jitter_s: float = 10.0,
          during_faults: bool = False) -> DataSet:
    """The set with background noise and jittered, out-of-order starts (see the module docstring)."""
    rng = random.Random(seed)
    real = list(base.alerts)
    spans = _fault_spans(base)
    timed: list[tuple[float, AlertLike]] = [
        (a.starts_at, _alert(a, starts_at=a.starts_at + rng.uniform(-jitter_s, jitter_s))) for a in real]
    truth = dict(base.truth)
    n = 0
    for lo, hi in _active(sorted(a.starts_at for a in real), margin_s=900.0):
        t = lo
        while (t := t + rng.expovariate(noise_per_s)) < hi:
            if not during_faults and _inside(spans, t):
                continue
            like = rng.choice(real)
            fp = f"noise-{n}"
            timed.append((t, _alert(like, fingerprint=fp, starts_at=t)))
            truth[fp] = fp
            n += 1
    timed.sort(key=lambda x: x[0])  # arrival order: the unjittered time
    name = "rca-micross + noise " + ("everywhere" if during_faults else "between faults") + f", jittered, seed {seed}"
    return DataSet(name, [a for _, a in timed], truth, base.topology)


def _fault_spans(base: DataSet) -> list[tuple[float, float]]:
    """[first, last] alert of each fault, sorted."""
    spans: dict[str, tuple[float, float]] = {}
    for a in base.alerts:
        f = base.truth[a.fingerprint]
        lo, hi = spans.get(f, (a.starts_at, a.starts_at))
        spans[f] = (min(lo, a.starts_at), max(hi, a.starts_at))
    return sorted(spans.values())


def _inside(spans: list[tuple[float, float]], t: float) -> bool:
    i = bisect.bisect_right(spans, (t, float("inf"))) - 1
    return any(lo <= t <= hi for lo, hi in spans[max(i - 3, 0):i + 1])


_SYMPTOMS = ("HighErrorRate", "HighLatency", "CPUSaturation", "MemoryPressure", "PodRestarts")


def _graph(rng: random.Random, services: int) -> list[tuple[int, int]]:
    """Caller -> callee edges of a layered graph: each service calls one to three of the later ones."""
    edges = set()
    for s in range(services - 1):
        for _ in range(rng.randint(1, 3)):
            edges.add((s, rng.randint(s + 1, min(services - 1, s + 6))))
    return sorted(edges)


def _topology(services: int, instances: dict[int, list[str]], hosts: dict[str, str],
              edges: list[tuple[int, int]]) -> str:
    nodes = [{"id": f"svc{s}", "type": "Service"} for s in range(services)]
    nodes += [{"id": i, "type": "Service_Instance"} for ins in instances.values() for i in ins]
    nodes += [{"id": h, "type": "Host"} for h in sorted(set(hosts.values()))]
    links = [{"source": f"svc{a}", "target": f"svc{b}", "label": "control_flow"} for a, b in edges]
    links += [{"source": i, "target": f"svc{s}", "label": "instance_of"} for s, ins in instances.items() for i in ins]
    links += [{"source": i, "target": h, "label": "hosted_on"} for i, h in hosts.items()]
    return orjson.dumps({"nodes": nodes, "edges": links}).decode()


def cascades(*, seed: int = 23, hours: float = 12.0, services: int = 24, clusters: int = 3,
             fault_every_s: float = 240.0, recur_share: float = 0.3) -> DataSet:
    """Generated multi-cluster cascades with their truth and topology (see the module docstring)."""
    rng = random.Random(seed)
    edges = _graph(rng, services)
    callers: dict[int, list[int]] = {s: [a for a, b in edges if b == s] for s in range(services)}
    instances = {s: [f"svc{s}-{k}" for k in range(rng.randint(2, 4))] for s in range(services)}
    hosts = {i: f"host{rng.randrange(8)}" for ins in instances.values() for i in ins}
    start, end = 1_780_000_000.0, 1_780_000_000.0 + hours * 3600
    faults: list[tuple[float, int, int, str]] = []  # (start, cluster, root, symptom)
    t = start
    while (t := t + rng.expovariate(1 / fault_every_s)) < end:
        faults.append((t, rng.randrange(clusters), rng.randrange(services), rng.choice(_SYMPTOMS)))
    rows: list[tuple[float, dict[str, object], str]] = []
    for n, (at, cluster, root, symptom) in enumerate(faults):
        duration = rng.uniform(120, 600)
        rows += _fault(rng, f"f{n}", at, duration, f"c{cluster}", root, symptom, callers, instances, hosts)
        again = at + duration + rng.uniform(60, 1200)
        if rng.random() < recur_share and again < end:  # the same root and symptom failing again: a new fault
            faults.append((again, cluster, root, symptom))
    rows.sort(key=lambda r: r[0])
    alerts: list[AlertLike] = []
    truth: dict[str, str] = {}
    for n, (at, labels, fault_id) in enumerate(rows):
        fp = f"g-{n}"
        alerts.append(Alert(fingerprint=fp, source="cascade", service=str(labels["service"]),
                            symptom=str(labels["alertname"]), scope=f"cluster={labels['cluster']}", starts_at=at,
                            labels={k: str(v) for k, v in labels.items()}))
        truth[fp] = fault_id
    return DataSet(f"generated cascades, seed {seed}", alerts, truth, _topology(services, instances, hosts, edges))


def _fault(
    rng: random.Random, fault: str, at: float, duration: float, cluster: str, root: int, symptom: str,
    callers: dict[int, list[int]], instances: dict[int, list[str]], hosts: dict[str, str],
) -> list[tuple[float, dict[str, object], str]]:
    """One fault's alerts: the root's symptom, its host's metrics, and its callers' trace errors (two hops)."""
    out: list[tuple[float, dict[str, object], str]] = []
    root_ins = instances[root]
    interval = rng.uniform(5, 40)
    t = at
    while t < at + duration:
        ins = rng.choice(root_ins)
        out.append((t, {"alertname": symptom, "service": f"svc{root}", "instance": ins, "host": hosts[ins],
                        "cluster": cluster}, fault))
        t += rng.expovariate(1 / interval)
    if rng.random() < 0.5:
        ins = rng.choice(root_ins)
        for _ in range(rng.randint(1, 4)):
            out.append((at + rng.uniform(0, duration), {"alertname": "HostLoadHigh", "service": "node",
                                                         "host": hosts[ins], "cluster": cluster}, fault))
    hop1 = callers[root]
    hop2 = [c for h in hop1 for c in callers[h]]
    for depth, ups in ((1, hop1), (2, hop2)):
        for up in ups:
            if rng.random() < (0.8 if depth == 1 else 0.4):
                callee = root if depth == 1 else rng.choice([h for h in hop1 if up in callers[h]])
                for _ in range(rng.randint(1, 6)):
                    caller_ins, callee_ins = rng.choice(instances[up]), rng.choice(instances[callee])
                    out.append((at + rng.uniform(5 * depth, duration), {
                        "alertname": "TraceErrors", "service": f"svc{callee}", "caller": caller_ins,
                        "callee": callee_ins, "cluster": cluster}, fault))
    return out
