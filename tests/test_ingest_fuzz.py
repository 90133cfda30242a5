"""Hostile bodies on every ingest route: each gets a 4xx naming its reason, never a 5xx, and nothing of it is
written; what is valid is written exactly once (its alerts as records on `alerts`). Counted: requests in =
accepted + refused.

Two layers. A hypothesis property on each route's body check (the code that decides 202 or 400): any bytes,
any JSON value, any mutation of a valid body either validates or is refused with a 400, never another
exception (which the web server would turn into a 500). Then a catalogue of more than 50 bad bodies per route
(junk shared by all routes, mutations of each route's valid body, broken and unknown Content-Encodings, an
oversize body) posted to a real worker on the embedded broker, with the topics read back.
"""

from __future__ import annotations

import gzip
import http.client
import json
import random
import zlib
from collections import Counter
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from correlator.sources import parse
from stream.batches import decode_batch
from stream.broker import EmbeddedBroker
from stream.ingest import ENDPOINTS, Endpoint, Refusal

from .test_ingest import read_all, ready_worker, ticket
from .test_sources_alertmanager import webhook
from .test_sources_zabbix import problem
from .workers import PATIENT_ADMISSION, Deployment, WorkerProc

LIMIT = 64 * 1024
BY_NAME = {e.name: e for e in ENDPOINTS}
VALID: dict[str, Any] = {
    "alertmanager": webhook(),
    "zabbix": problem(),
    "alerts": {"starts_at": 1772359205, "labels": {"alertname": "DiskFull", "service": "db"}, "severity": "warning"},
    "tickets": ticket("FUZZ-1"),
}
ODD_VALUES: list[Any] = [None, True, False, 0, -1, -1e9, 1e300, 2**70, "", " ", "x" * 300, "9999-12-31T23:59:59Z",
                         "\u0000", [], [None], {}, {"a": {"b": []}}]

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=20)


def dumps(value: Any) -> bytes:
    """JSON as any sender may write it: the stdlib's, which (unlike orjson) writes integers past 64 bits."""
    return json.dumps(value).encode()


def outcome(endpoint: Endpoint, body: bytes) -> int:
    """202 when the route's check accepts the body, the refusal's status otherwise; anything else escapes."""
    try:
        endpoint.validate(body)
    except Refusal as refusal:
        assert refusal.reason and refusal.message, refusal
        return refusal.status
    return 202


def mutations(value: Any, path: tuple[Any, ...] = ()) -> Iterator[Any]:
    """Copies of `value` with one field (at any depth, lists' first item) deleted or set to an odd value."""
    if isinstance(value, dict):
        for key in value:
            rest = {k: v for k, v in value.items() if k != key}
            yield rest
            for odd in ODD_VALUES:
                yield {**value, key: odd}
            for inner in mutations(value[key], (*path, key)):
                yield {**value, key: inner}
    elif isinstance(value, list) and value:
        for inner in mutations(value[0], (*path, 0)):
            yield [inner, *value[1:]]


# ---------------------------------------------------------------- the property: 400 or valid, never an escape


@pytest.mark.parametrize("name", sorted(BY_NAME))
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.binary(max_size=300))
def test_any_bytes_are_400_or_valid(name: str, data: bytes) -> None:
    assert outcome(BY_NAME[name], data) in (202, 400)


@pytest.mark.parametrize("name", sorted(BY_NAME))
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(value=json_values)
def test_any_json_is_400_or_valid(name: str, value: Any) -> None:
    assert outcome(BY_NAME[name], dumps(value)) in (202, 400)


@pytest.mark.parametrize("name", sorted(BY_NAME))
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_any_field_set_to_any_json_is_400_or_valid(name: str, data: st.DataObject) -> None:
    body = dict(VALID[name])
    key = data.draw(st.sampled_from(sorted(body)))
    body[key] = data.draw(json_values)
    assert outcome(BY_NAME[name], dumps(body)) in (202, 400)


# ---------------------------------------------------------------- the catalogue, on a real worker


def junk() -> list[bytes]:
    """Bad bodies for any route: not JSON, broken JSON, JSON of no use, bytes that are not text."""
    rng = random.Random(16)
    return [
        b"", b" ", b"\n\n\n", b"\x00", b"\x00" * 64, b"\xff\xfe\xfd", b"\xef\xbb\xbf{}", b"null", b"true", b"0",
        b"-1", b"1e400", b'"text"', b"[", b"]", b"{", b"}", b"{]", b"[}", b"[" * 5000 + b"]" * 5000,
        b'{"a": NaN}', b"Infinity", b'{"a": 1,}', b"[1,]", b"{'single': 1}", b"<alert/>", b"GET / HTTP/1.1\r\n",
        b'{"a": "\xff\xfe"}', b'{"a": "\\ud800"}', b'{"a": 1}{"b": 2}', b"[null]", b"[[]]", b"[1, 2, 3]",
        b'["x"]', b'{"a": ' + b"1" * 5000 + b"}", b"a" * 60_000, bytes(rng.randrange(256) for _ in range(512)),
        bytes(rng.randrange(256) for _ in range(4096)), gzip.compress(b"{}"),
    ]


def catalogue(name: str) -> list[bytes]:
    """Every body tried on one route: the junk, then each mutation of the route's valid body (deduplicated)."""
    bodies = junk() + [dumps(m) for m in mutations(VALID[name])]
    if name in ("alerts", "tickets"):  # array forms: one bad element refuses the whole array
        good = VALID[name]
        bodies += [dumps([good, m]) for m in list(mutations(good))[:20]]
    if name == "alerts":  # NDJSON with one bad line
        bodies += [dumps(VALID[name]) + b"\n" + line for line in (b"{", b"[]", b"null", b"{\"x\": 1}")]
    return list(dict.fromkeys(bodies))


ENCODED: list[tuple[str, str, bytes, int]] = [
    # (name, Content-Encoding, body, the status it must get)
    ("gzip of junk", "gzip", b"this is not gzip", 400),
    ("deflate of junk", "deflate", b"not deflate either", 400),
    ("truncated gzip", "gzip", gzip.compress(dumps(VALID["alerts"]))[:25], 400),
    ("unknown encoding", "compress", dumps(VALID["alerts"]), 415),
    ("two encodings", "gzip, deflate", zlib.compress(gzip.compress(dumps(VALID["alerts"]))), 415),
    ("x-gzip", "x-gzip", gzip.compress(dumps(VALID["alerts"])), 415),
]


def post(port: int, path: str, body: bytes, encoding: str | None = None) -> tuple[int, Any]:
    """One request on a connection of its own (the server closes one after a refusal it could not read past)."""
    headers = {"Content-Type": "application/json", **({"Content-Encoding": encoding} if encoding else {})}
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("POST", path, body=body, headers=headers)
        resp = conn.getresponse()
        data = resp.read()
    finally:
        conn.close()
    return resp.status, orjson.loads(data) if "json" in (resp.getheader("Content-Type") or "") else data


@pytest.fixture(scope="module")
def target(broker: EmbeddedBroker, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Deployment, WorkerProc]]:
    """A worker with a 64 KiB body limit."""
    env = {"AIOPS_IDLE_ADVANCE": "300", "AIOPS_INGEST_MAX_BODY_BYTES": str(LIMIT), "AIOPS_LOG_LEVEL": "warning",
           **PATIENT_ADMISSION}  # every body gets its own answer, never a 503
    with ready_worker(broker, tmp_path_factory.mktemp("fuzz"), env) as running:
        yield running


def test_every_bad_body_is_refused_with_its_reason_and_nothing_of_it_is_written(
        target: tuple[Deployment, WorkerProc]) -> None:
    dep, worker = target
    accepted: dict[str, list[bytes]] = {name: [] for name in BY_NAME}
    refused: Counter[str] = Counter()
    sent: Counter[str] = Counter()
    for name, endpoint in BY_NAME.items():
        tries: list[tuple[bytes, str | None, int]] = [(b, None, outcome(endpoint, b)) for b in catalogue(name)]
        tries += [(body, enc, status) for _, enc, body, status in ENCODED]
        tries.append((b"[" + b" " * LIMIT + b"]", None, 413))
        assert sum(status != 202 for _, _, status in tries) >= 50, name
        for body, encoding, want in tries:
            status, answer = post(worker.web_port, endpoint.path, body, encoding)
            sent[name] += 1
            assert status < 500, (name, body[:80], answer)
            assert status == want, (name, encoding, body[:80], answer)
            if status == 202:
                if answer["records"]:
                    accepted[name].append(body)
                continue
            # refused over HTTP exactly as the check refuses it, with its reason
            assert answer["error"] and answer["detail"] and answer["status"] == status, answer
            refused[name] += 1
            if status == 400 and encoding is None:  # the body check's own refusals name the field
                assert answer["errors"][0]["field"] and answer["category"] == answer["error"], answer

    # count: in = accepted + refused, per route, on the worker's own counters
    for name in BY_NAME:
        codes = {code: worker.metric("aiops_ingest_requests_total", endpoint=name, code=code)
                 for code in ("202", "400", "413", "415", "500", "503")}
        assert codes["500"] == codes["503"] == 0, (name, codes)
        assert sum(codes.values()) == sent[name], (name, codes, sent[name])
        assert codes["400"] + codes["413"] + codes["415"] == refused[name], (name, codes)
        assert refused[name] >= 50

    # nothing refused is on the topics; every accepted alert is on `alerts` once (the hop), or its body on
    # `alerts.raw` when the adapter accepts it but an alert cannot be built (normalize dead-letters it)
    raw = read_all(dep.broker.bootstrap, dep.topic("alerts_raw"))
    landed = read_all(dep.broker.bootstrap, dep.topic("alerts"))
    fingerprints: Counter[str] = Counter()
    bodies: Counter[bytes] = Counter()
    for name in ("alertmanager", "zabbix", "alerts"):
        for body in accepted[name]:
            try:
                fingerprints.update(a.fingerprint for a in parse(BY_NAME[name].source or "", body))
            except ValueError:
                bodies[body] += 1
    assert Counter(r.value for r in raw) == bodies
    assert Counter(a.fingerprint for r in landed for s in decode_batch(r.value)[0] for a in s.records) == fingerprints
    tickets = read_all(dep.broker.bootstrap, dep.topic("tickets_raw"))
    assert len(tickets) == sum(len(orjson.loads(b)) if b.lstrip().startswith(b"[") else 1
                               for b in accepted["tickets"])
