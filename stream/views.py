"""Web views on the worker's port: `/incidents`, `/incidents/{id}` (from the engines' tables), `/metrics` and
`/stats` (the engines' counters summed: records, duplicates, alerts, opened, ...; they work with metrics off).

Every worker answers for the whole cluster: the incidents its own engines hold (fresh to the last alert, with
every member) and, from the read model (correlator/readmodel.py, fed by stream/console/feed.py), every other
incident and cause any worker published. Open incidents and finished ones still in retention are listed, newest
first. An incident's answer carries what the read model holds of it, the same on every worker: `acknowledged_by`/
`acknowledged_at`, its SLA clock (`sla`), its cause (`parent_id`, `joined_because`, and `cause`: the cause's id,
children, counts and status) and `silenced` (the active silences matching it: id, by whom, until when). The read
model follows the topics a moment behind them: a client that has just acknowledged an incident polls until the
answer shows it. With the console off (`AIOPS_CONSOLE=false`) there is no read model: a worker answers only for
the incidents its engines hold, without those facts.
"""

from __future__ import annotations

import time
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from correlator import compiled
from correlator.incidents import IncidentState
from correlator.readmodel import ReadModel, Row
from stream.app import App
from stream.pipeline import Pipeline
from stream.problems import problem_response

__all__ = ["install_metrics", "install_views", "incident_summary", "incidents_of", "row_summary"]

LIST_LIMIT = 500


def incident_summary(inc: IncidentState) -> dict[str, Any]:
    """The JSON form of one incident for the views."""
    return {
        "id": inc.id, "key": inc.key, "status": {"open": "firing"}.get(inc.phase.value, inc.phase.value),
        "alert_count": inc.alert_count, "first_seen": inc.first_seen, "last_seen": inc.last_seen,
        "firing_count": inc.firing_count, "distinct_fingerprints": len(inc.members),
        "duplicates": inc.duplicates, "previous_id": inc.previous_id, "member_sample": inc.sample,
        "entities": inc.entities, "seq": inc.seq,
    }


def row_summary(row: Row) -> dict[str, Any]:
    """The JSON form of an incident or cause of the read model, in `incident_summary`'s shape."""
    return {
        "id": row.id, "key": row.key, "kind": row.kind, "status": row.status, "alert_count": row.alert_count,
        "first_seen": row.first_seen, "last_seen": row.last_seen, "firing_count": row.firing_count,
        "distinct_fingerprints": row.distinct, "duplicates": row.duplicates, "previous_id": row.previous_id,
        "member_sample": row.member_sample, "entities": row.entities, "seq": row.seq, "services": row.services,
        "severity": row.severity, "children": row.children,
    }


def cluster_facts(model: ReadModel, incident_id: str, now: float) -> dict[str, Any]:
    """What the read model adds to an incident's answer: acknowledgement, SLA clock, cause, silences."""
    row = model.rows.get(incident_id)
    clock = model.clocks.get(incident_id)
    parent_id = model.parent(row) if row is not None else None
    silences = model.silenced(row, now) if row is not None else []
    return {
        "acknowledged_by": clock.acked_by if clock is not None else None,
        "acknowledged_at": clock.acked_at if clock is not None else None,
        "sla": clock.model_dump(mode="json") if clock is not None else None,
        "parent_id": parent_id,
        "joined_because": model.why(row) if row is not None else "",
        "cause": cause_summary(model.rows[parent_id]) if parent_id is not None else None,
        "silenced": [{"id": s.id, "by": s.created_by, "until": s.ends_at, "comment": s.comment} for s in silences],
    }


def cause_summary(cause: Row) -> dict[str, Any]:
    """The cause an incident is grouped under, as its answer carries it: id, children, counts, status."""
    return {"parent_id": cause.id, "children": list(cause.children), "alert_count": cause.alert_count,
            "first_seen": cause.first_seen, "last_seen": cause.last_seen, "status": cause.status}


def incidents_of(pipe: Pipeline) -> list[IncidentState]:
    """Every incident held by this worker's engines, newest first."""
    held = [inc for engine in pipe.engines.values() for _, st in engine.store.items() for inc in st.incidents]
    return sorted(held, key=lambda i: (i.last_seen, i.id), reverse=True)


def install_metrics(app: App) -> None:
    """Serve this process's Prometheus metrics on `/metrics` (every role has it)."""

    @app.page("/metrics")
    async def prometheus_metrics(web: Any, request: Any) -> Any:
        return web.bytes(generate_latest(), content_type=CONTENT_TYPE_LATEST.split(";")[0])


def install_views(pipe: Pipeline, model: ReadModel | None = None) -> None:
    """Register `/metrics`, `/assignment` and the incident views on the app's web server: with `model`, the
    incident views answer for the whole cluster, and an incident's acknowledgement, SLA clock, cause and
    silences come from it (`cluster_facts`), so every worker gives the same answer."""
    app = pipe.app
    install_metrics(app)

    @app.page("/assignment")
    async def assignment(web: Any, request: Any) -> Any:
        owned = sorted(tp.partition for tp in app.assignor.assigned_actives() if tp.topic == pipe.alerts_topic)
        return web.json({"alerts_partitions": owned, "engines": sorted(pipe.engines)})

    @app.page("/stats")
    async def stats(web: Any, request: Any) -> Any:
        # The engines' own counters, independent of the metrics (which AIOPS_METRICS=false turns off).
        totals: dict[str, int] = {}
        for engine in pipe.engines.values():
            for name, value in engine.counters.as_dict().items():
                totals[name] = totals.get(name, 0) + value
        # engine_build: whether this process runs the compiled engine (correlator/compiled.py), for benchmarks
        return web.json({"engines": sorted(pipe.engines), "normalized": pipe.normalized, "counters": totals,
                         "engine_build": compiled.status()})

    @app.page("/incidents/")
    async def list_incidents(web: Any, request: Any) -> Any:
        status = request.query.get("status")
        found = [incident_summary(i) for i in incidents_of(pipe)]
        if model is not None:  # the rest of the cluster's incidents (stage 1; causes are at /incidents/{id})
            held = {i["id"] for i in found}
            found += [row_summary(r) for r in model.rows.values() if r.kind == "incident" and r.id not in held]
            found.sort(key=lambda i: (i["last_seen"], i["id"]), reverse=True)
        if status:
            found = [i for i in found if i["status"] == status]
        return web.json({"incidents": found[:LIST_LIMIT], "total": len(found)})

    @app.page("/incidents/{incident_id}/")
    async def get_incident(web: Any, request: Any, incident_id: str) -> Any:
        extra = cluster_facts(model, incident_id, time.time()) if model is not None else {}
        for inc in incidents_of(pipe):
            if inc.id == incident_id:
                return web.json({**incident_summary(inc), "members": sorted(inc.members), **extra})
        row = model.rows.get(incident_id) if model is not None else None
        if row is not None:
            return web.json({**row_summary(row), "members": row.member_sample, **extra})
        return problem_response(request, 404, "not_found", f"no incident {incident_id} in the cluster")
