"""`GET /openapi.json` covers every route of a built worker and is valid OpenAPI 3.1; `GET /schemas/alert.json`
describes exactly what the generic adapter accepts (deploy/schemas/alert.json is the same document)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import jsonschema
import orjson
import pytest
from aiohttp.test_utils import TestClient, TestServer
from openapi_spec_validator import validate

from correlator.sources import SourceError, parse
from correlator.sources.generic import _KNOWN
from correlator.sources.schemas import GenericAlert
from stream.app import App
from stream.openapi import alert_schema, served_routes

from .notifying import ISSUE_ROUTES
from stream.settings import Settings
from stream.worker import build_ingest_app, build_worker_app

from .paths import LAB_STORM, ROOT

POSTS = orjson.loads((ROOT / "tests/data/prometheus_v2_posts.json").read_bytes())["posts"]


def _get(app: App, *paths: str) -> list[tuple[int, str, Any]]:
    async def go() -> list[tuple[int, str, Any]]:
        async with TestClient(TestServer(app.web.web_app)) as client:
            out = []
            for path in paths:
                resp = await client.get(path)
                out.append((resp.status, resp.content_type, orjson.loads(await resp.read())))
            return out

    return asyncio.run(go())


@pytest.mark.parametrize("role", ["all", "ingest", "notify"])
def test_the_document_covers_every_route_and_validates(role: str, tmp_path: Path) -> None:
    notify = None
    if role == "notify":  # a worker with the notify stage: its silence and notify views too
        notify = tmp_path / "notify.yaml"
        notify.write_text(ISSUE_ROUTES)
    settings = Settings(data_dir=tmp_path, stage2=True, role="ingest" if role == "ingest" else "all",
                        notify_file=notify)
    app = build_ingest_app(settings) if role == "ingest" else build_worker_app(settings)[0]
    [(status, content_type, doc), (slashed, _, again)] = _get(app, "/openapi.json", "/openapi.json/")
    assert (status, content_type, slashed) == (200, "application/json", 200) and again == doc
    validate(doc)  # OpenAPI 3.1, JSON Schema 2020-12 components, every $ref resolvable
    documented = {(method.upper(), path) for path, ops in doc["paths"].items() for method in ops}
    served = served_routes(app)
    assert served - documented == set(), "routes missing from /openapi.json"
    assert documented - served == set(), "documented routes this worker does not serve"
    assert len(served) >= (20 if role == "all" else 8)
    schemas = doc["components"]["schemas"]
    for name in ("GenericAlert", "PostableAlert", "AlertmanagerWebhook", "TicketBody", "ReviewRequest", "Problem",
                 "IncidentEvent", "ParentEvent", "TriagedTicket"):
        assert name in schemas, name
    if role == "ingest":
        return
    if role == "notify":
        assert {("POST", "/silences"), ("DELETE", "/silences/{silence_id}"), ("GET", "/notify/{subject_id}")} <= served
        silence = doc["paths"]["/silences"]["post"]
        assert silence["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith("/SilenceRequest")
    approve = doc["paths"]["/review/{ticket_id}/approve"]["post"]
    assert approve["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith("/ReviewRequest")
    assert approve["responses"]["409"]["content"]["application/problem+json"]["schema"]["$ref"].endswith("/Problem")


def test_the_generic_model_names_the_adapter_s_fields() -> None:
    assert set(GenericAlert.model_fields) == set(_KNOWN)


def test_served_alert_schema_is_the_deploy_file(tmp_path: Path) -> None:
    app = build_ingest_app(Settings(data_dir=tmp_path, role="ingest"))
    [(status, content_type, schema)] = _get(app, "/schemas/alert.json")
    assert (status, content_type) == (200, "application/schema+json")
    assert schema == alert_schema() == orjson.loads((ROOT / "deploy/schemas/alert.json").read_bytes())
    jsonschema.Draft202012Validator.check_schema(schema)


NOW = 1_772_420_400
ACCEPTED: list[object] = [
    {"starts_at": NOW},
    {"starts_at": "2026-03-01T10:00:00Z", "status": "resolved", "ends_at": "2026-03-01T10:05:00+02:00"},
    {"starts_at": str(NOW), "labels": {"n": 5, "b": True, "gone": None, "deep": {"a": 1}}, "annotations": None},
    {"starts_at": NOW, "status": None, "severity": "sev1", "team": "db", "summary": "x", "fingerprint": "f"},
    [{"starts_at": NOW, "service": "a"}, {"labels": {"alertname": "X"}, "startsAt": "2026-03-01T10:00:00Z"}],
    *[orjson.loads(p["body"]) for p in POSTS],
    *[orjson.loads(line) for line in LAB_STORM.read_bytes().splitlines()[:40]],
]
REFUSED: list[object] = [
    {"service": "a"},  # no start time in either spelling
    {"starts_at": NOW, "status": "open"},
    {"starts_at": NOW * 1000},
    {"starts_at": NOW, "labels": []},
    {"starts_at": NOW, "service": 5},
    [{"labels": {"alertname": 5}, "startsAt": "2026-03-01T10:00:00Z"}],
    "an alert",
]


@pytest.mark.parametrize("body", ACCEPTED)
def test_what_the_adapter_accepts_the_schema_accepts(body: object) -> None:
    parse("generic", orjson.dumps(body))  # accepted by the adapter...
    jsonschema.validate(body, alert_schema())  # ...and by the schema


@pytest.mark.parametrize("body", REFUSED)
def test_what_the_adapter_refuses_the_schema_refuses(body: object) -> None:
    with pytest.raises(SourceError):
        parse("generic", orjson.dumps(body))
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(body, alert_schema())
