"""The analytics store, `aiops summary`, `aiops trends` and `aiops mcp` against one live worker on the embedded broker.

One worker for the module (started once, stopped by pid): the lab storm (moved to the last hour, sent twice so
its re-sends are duplicates) and a set of tickets go through the live pipeline, two tickets are reviewed; then
the figures of `aiops summary --json` and `aiops trends --json` must equal counts taken independently from the
`incidents` and `tickets.triaged` topics. The MCP test drives `aiops mcp` over stdio with the SDK's own client.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from correlator.insight import iso_week, week_containing
from stream.broker import EmbeddedBroker
from correlator.stage2.models import Assignment, ParentEvent
from stream.incident_records import decode_incident_record, is_stage2_record

from .paths import LAB_STORM
from .ticketing import DOWN, REQUEST, VAGUE, call, ticket, wait_ready, wait_until
from .workers import ROOT, Deployment, WorkerProc

TEXTS = [DOWN, VAGUE, REQUEST, "DNS resolution fails for all hosts in the office", VAGUE + " again",
         "BGP session flapping on the core router", "Please increase our bandwidth", "Disk is full on the NAS"]


FUTURE_SKEW_S = 3600.0
"""How far ahead of its arrival the worker takes an alert's time (`AIOPS_MAX_FUTURE_SKEW`): see `moved_storm`."""


def moved_storm(now: float) -> bytes:
    """The lab storm's alerts moved so that it ends a few minutes before `now` (same gaps, same order), inside the
    ISO week of `now`, where the tickets' decisions count: in the first hour of a week (Monday 00:00-00:53 UTC) the
    48-minute storm would begin in the week before, so it begins a minute into this one instead and ends up to 48
    minutes ahead (the worker takes that much: FUTURE_SKEW_S). Before, the test failed then, every week."""
    alerts = [orjson.loads(line) for line in LAB_STORM.read_bytes().splitlines() if line.strip()]
    first, last = min(a["starts_at"] for a in alerts), max(a["starts_at"] for a in alerts)
    shift = max(now - 300 - last, week_containing(now) + 60 - first)
    assert last + shift <= now + FUTURE_SKEW_S - 300
    return b"\n".join(orjson.dumps({**a, "starts_at": a["starts_at"] + shift}) for a in alerts)


def resolutions(body: bytes, fingerprints: list[str]) -> bytes:
    """The alerts of `body` with these fingerprints, resolved at the storm's last alert (not late, nothing new)."""
    alerts = [orjson.loads(line) for line in body.splitlines()]
    end = max(a["starts_at"] for a in alerts)
    return b"\n".join(orjson.dumps({**a, "status": "resolved", "ends_at": end}) for a in alerts
                      if a["fingerprint"] in fingerprints)


@pytest.fixture(scope="module")
def live(broker: EmbeddedBroker, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Deployment, WorkerProc]]:
    """One worker with the storm and the tickets fed, and two tickets reviewed."""
    dep = Deployment(broker, tmp_path_factory.mktemp("insight"), extra_env={"AIOPS_IDLE_ADVANCE": "300",
                                                                           "AIOPS_MAX_FUTURE_SKEW": str(FUTURE_SKEW_S)})
    dep.create_topics()
    worker = dep.start_worker()
    try:
        wait_ready(worker)
        body = moved_storm(time.time())
        dep.produce("alerts_raw", [(b"generic", body), (b"generic", body)])  # the second time: all duplicates
        dep.produce("tickets_raw", [ticket(f"IN-{i}", text) for i, text in enumerate(TEXTS)])
        dep.produce("tickets_triaged", [(b"bad", b"{nope"), (b"bad2", b'{"ticket_id": "x"}')])  # BAD_KEYS
        queue = wait_until(lambda: (lambda q: q if q["total"] >= 2 else None)(worker.get("/review")), 60,
                           "two tickets in review", worker)
        first, second = (t["ticket_id"] for t in queue["tickets"][:2])
        assert call(worker, "POST", f"/review/{first}/approve", {"who": "ana"})[0] == 200
        assert call(worker, "POST", f"/review/{second}/override",
                    {"who": "ana", "taxonomy_code": "network.dns", "severity": "sev2"})[0] == 200
        # A re-send alone publishes no update (tests/test_engine.py): the second send's duplicates reach the topic
        # with the incident's next change, which came in the same batch or never. One resolution per incident,
        # sent after the duplicates, is that change whatever the batches were (stop 35's CI on e04ab31 timed out waiting).
        incidents = wait_until(lambda: (lambda es: es if sum(e["alert_count"] for e in es.values()) >= 40 else None)(
            incidents_of(dep)), 60, "the storm's alerts", worker)
        dep.produce("alerts_raw", [(b"generic", resolutions(body, [e["member_sample"][0] for e in incidents.values()]))])
        wait_until(lambda: sum(e["duplicates"] for e in incidents_of(dep).values()) >= 40, 60,
                   "the storm's re-sends on the topic", worker)
        wait_until(lambda: len(triaged(dep, 2.0)) >= len(TEXTS) + 2, 60, "tickets and reviews", worker)
        yield dep, worker
    finally:
        worker.stop()


BAD_KEYS = {b"bad", b"bad2"}


def triaged(dep: Deployment, timeout: float) -> list[dict[str, Any]]:
    """The decisions on `tickets.triaged`, without the two bad records the fixture put there."""
    return [orjson.loads(r.value) for r in dep.read_so_far("tickets_triaged", timeout=timeout) if r.key not in BAD_KEYS]


def incidents_of(dep: Deployment) -> dict[str, dict[str, Any]]:
    """The latest event of each stage-1 incident on the topic."""
    latest: dict[str, dict[str, Any]] = {}
    for record in dep.read_so_far("incidents", timeout=5.0):
        if is_stage2_record(record.headers):
            continue
        event = orjson.loads(record.value)
        if event["seq"] > latest.get(event["incident_id"], {"seq": 0})["seq"]:
            latest[event["incident_id"]] = event
    return latest


def causes_of(dep: Deployment) -> dict[str, str]:
    """Each stage-1 incident's parent, as stage 2's records on the topic name it (the parents' children lists,
    and assignments: the child that opened a parent has none of its own)."""
    found: dict[str, str] = {}
    for record in dep.read_so_far("incidents", timeout=5.0):
        decoded = decode_incident_record(record.value, record.headers)
        if isinstance(decoded, Assignment):
            found[decoded.child_id] = decoded.parent_id
        elif isinstance(decoded, ParentEvent):
            found.update({child: decoded.parent_id for child in decoded.children})
    return found


def causes_shown(dep: Deployment, worker: WorkerProc) -> bool:
    """Whether stage 2 has published causes and the worker's `GET /incidents/{id}` names each incident's."""
    causes = causes_of(dep)
    return bool(causes) and all(worker.get(f"/incidents/{i}/")["parent_id"] == causes.get(i) for i in incidents_of(dep))


def aiops(worker: WorkerProc, *args: str) -> Any:
    """Run an `aiops` subcommand against the worker; its JSON output."""
    out = subprocess.run([sys.executable, "-m", "stream.cli", *args, "--url", f"http://127.0.0.1:{worker.web_port}"],
                         cwd=ROOT, capture_output=True, timeout=60, check=True)
    return orjson.loads(out.stdout)


def settled(worker: WorkerProc, dep: Deployment, week: str) -> dict[str, Any]:
    """The summary once the store has folded what the topics hold (it follows them, a moment behind)."""
    def probe() -> dict[str, Any] | None:
        summary: dict[str, Any] = aiops(worker, "summary", "--json", "--week", week)
        figures = {h["name"]: h["this_week"] for h in summary["headlines"]}
        want = sum(e["alert_count"] for e in incidents_of(dep).values())
        return summary if figures["alerts"] == want and figures["tickets"] == len(TEXTS) else None
    return wait_until(probe, 30, "the analytics store to catch up", worker)


def test_summary_and_trends_agree_with_the_topics(live: tuple[Deployment, WorkerProc], tmp_path: Path) -> None:
    dep, worker = live
    incidents = incidents_of(dep)
    week_start = week_containing(min(e["first_seen"] for e in incidents.values()))
    in_week = {i: e for i, e in incidents.items() if week_start <= e["first_seen"] < week_start + 7 * 86400}
    summary = settled(worker, dep, iso_week(week_start))
    figures = {h["name"]: h["this_week"] for h in summary["headlines"]}
    events = triaged(dep, 3.0)
    firsts = [e for e in events if e["seq"] == 1 and e["subject"] == "ticket"]
    reviews = Counter(e["review"]["action"] for e in events if "review" in e)

    alerts = sum(e["alert_count"] for e in in_week.values())
    assert alerts == 40  # the lab storm's alerts, once each
    assert figures["alerts"] == alerts
    assert figures["duplicates"] == sum(e["duplicates"] for e in in_week.values()) >= 40  # sent twice
    assert figures["incidents_opened"] == len(in_week)
    assert figures["noise_reduction"] == round(100 * (1 - len(in_week) / alerts), 1)
    assert figures["tickets"] == len(firsts) == len(TEXTS)
    review_share = 100 * sum(e["status"] == "human_review" for e in firsts) / len(firsts)
    assert figures["review_share"] == round(review_share, 1)
    assert figures["override_rate"] == round(100 * reviews["override"] / (reviews["approve"] + reviews["override"]), 1)
    by_service: Counter[str] = Counter()
    for e in in_week.values():
        by_service[e["service"]] += e["alert_count"]
    assert {r["name"]: r["count"] for r in summary["noisy_services"]} == dict(by_service.most_common(5))

    until = str(week_start + 7 * 86400)
    by_code = aiops(worker, "trends", "--json", "--by", "taxonomy", "--since", "7d", "--until", until)
    assert {i["item"]: i["total"] for i in by_code["items"]} == Counter(e["taxonomy_code"] for e in firsts)
    assert all(i["trend"] == "new" or i["total"] < 2 for i in by_code["items"])  # nothing before this week
    by_service_trend = aiops(worker, "trends", "--json", "--by", "service", "--since", "30d", "--until", until)
    assert {i["item"]: i["total"] for i in by_service_trend["items"]} == Counter(e["service"] for e in in_week.values())
    assert worker.get(f"/trends?by=service&since=30d&until={until}") == by_service_trend  # the view: same answer

    out = subprocess.run([sys.executable, "-m", "stream.cli", "summary", "--week", iso_week(week_start), "--out",
                          str(tmp_path), "--format", "md", "--url", f"http://127.0.0.1:{worker.web_port}"],
                         cwd=ROOT, capture_output=True, timeout=60, check=True)
    report = (tmp_path / "report.md").read_text()
    assert out.stdout.decode().strip() == str(tmp_path / "report.md")
    assert f"| distinct alerts | {alerts} |" in report
    assert (tmp_path / "alerts_incidents.png").read_bytes()[:4] == b"\x89PNG"

    letters = [dict(r.headers) for r in dep.read_so_far("deadletter", timeout=5.0)]
    refused = sorted(h["category"].decode() for h in letters if h.get("agent") == b"insight_tickets")
    assert refused == ["invalid_triaged_ticket", "malformed_json"]  # dead-lettered with a reason, the rest counted


def test_mcp_over_stdio_reads_and_acknowledges(live: tuple[Deployment, WorkerProc]) -> None:
    from mcp import ClientSession
    from mcp.client.stdio import StdioServerParameters, stdio_client

    dep, worker = live
    params = StdioServerParameters(command=sys.executable, cwd=str(ROOT),
                                   args=["-m", "stream.cli", "mcp", "--url", f"http://127.0.0.1:{worker.web_port}"])

    async def session() -> tuple[set[str], list[dict[str, Any]], Any, Any]:
        async with stdio_client(params) as (read, write), ClientSession(read, write) as client:
            await client.initialize()
            tools = {t.name for t in (await client.list_tools()).tools}
            listed = (await client.call_tool("list_incidents", {"status": "firing"})).structured_content
            assert listed is not None
            target = listed["incidents"][0]["id"]
            acked = await client.call_tool("acknowledge_incident", {"incident_id": target, "who": "mcp-test"})
            refused = await client.call_tool("acknowledge_incident", {"incident_id": "no-such-incident", "who": "x"})
            return tools, listed["incidents"], acked, refused

    tools, listed, acked, refused = asyncio.run(session())
    assert {"list_incidents", "get_incident", "acknowledge_incident", "list_review_queue", "approve_ticket",
            "override_ticket", "triage_text", "trends", "weekly_summary"} <= tools
    on_topic = {i for i, e in incidents_of(dep).items() if e["status"] == "firing"}
    assert {i["id"] for i in listed} == on_topic  # the lab storm's open incidents, as the topic has them
    assert not acked.is_error and acked.structured_content["acked_by"] == "mcp-test"
    target = acked.structured_content["incident_id"]
    # the answer comes from the read model, a moment behind the SLA table's changelog: poll, as a client would
    seen = wait_until(lambda: (lambda got: got if (got["sla"] or {}).get("acked_by") else None)(
        worker.get(f"/incidents/{target}/")), 15, "the acknowledgement in the read model", worker)
    assert (seen["sla"]["phase"], seen["sla"]["acked_by"]) == ("acknowledged", "mcp-test")
    assert refused.is_error and "404" in refused.content[0].text and "no-such-incident" in refused.content[0].text
    # the acknowledgement is counted, with its time, in the hour the incident opened
    hours = worker.get("/insight/hours")["hours"]
    assert sum(h["counts"].get("acks", 0) for h in hours) == 1
    assert sum(h["times"].get("ack", {}).get("count", 0) for h in hours) == 1


def test_mcp_over_streamable_http_on_the_worker(live: tuple[Deployment, WorkerProc]) -> None:
    """`POST /mcp` on the worker's own port, with the SDK's streamable HTTP client: the same tools, the same data."""
    from mcp import ClientSession
    from mcp.client.streamable_http import streamable_http_client

    dep, worker = live
    # causes come from the read model, which follows `incidents` a moment behind: poll until it shows the ones
    # stage 2 has published (as a client would), then read them through MCP
    wait_until(lambda: causes_shown(dep, worker), 30, "the causes on the topic in the worker's answers", worker)

    async def session() -> tuple[set[str], Any, Any]:
        url = f"http://127.0.0.1:{worker.web_port}/mcp"
        async with streamable_http_client(url) as (read, write), ClientSession(read, write) as client:
            await client.initialize()
            tools = {t.name for t in (await client.list_tools()).tools}
            listed = (await client.call_tool("list_incidents", {})).structured_content
            assert listed is not None
            every = [await client.call_tool("get_incident", {"incident_id": i["id"]}) for i in listed["incidents"]]
            bad = await client.call_tool("trends", {"by": "colour"})
            return tools, every, bad

    tools, every, bad = asyncio.run(session())
    assert "weekly_summary" in tools
    found = [one.structured_content for one in every if not one.is_error]
    assert len(found) == len(every) == len(incidents_of(dep))
    assert all(f["members"] and f["id"] in incidents_of(dep) for f in found)
    named = {f["id"]: (f["cause"] or {}).get("parent_id") for f in found}
    assert any(named.values())  # the lab storm's incidents have causes
    assert all(f["cause"] is None or f["id"] in f["cause"]["children"] for f in found)
    assert named == {i: causes_of(dep).get(i) for i in named}  # members and causes as the topic has them
    assert bad.is_error and "by" in bad.content[0].text  # refused by the typed input schema, with the reason


def test_the_store_survives_a_restart(live: tuple[Deployment, WorkerProc], workers: list[WorkerProc]) -> None:
    """Last in the module (it stops the module's worker): a new worker restores the hours from the changelogs."""
    dep, worker = live
    before = worker.get("/insight/hours")["hours"]
    assert sum(h["counts"].get("alerts", 0) for h in before) == 40
    worker.stop()
    again = dep.start_worker("w2")
    workers.append(again)
    wait_ready(again)
    wait_until(lambda: again.get("/insight/hours")["hours"] == before, 60, "the hours restored", again)
