"""Every page the worker serves answers on both slash forms (`/incidents` and `/incidents/`), whichever form
its module registered: checked over every route of the apps as `aiops worker` builds them, for both roles."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import pytest

from stream.app import App, slash_twin
from stream.settings import Settings
from stream.worker import build_ingest_app, build_worker_app

# Views a person reaches from the README; the check below must cover them, or it proves nothing.
README_VIEWS = {"/incidents", "/incidents/{incident_id}", "/review", "/review/{ticket_id}/approve", "/metrics",
                "/readyz", "/ingest/alertmanager", "/stage2", "/sla", "/incidents/{incident_id}/ack"}


def _routes(app: App) -> dict[str, set[str]]:
    """Path pattern -> the HTTP methods it answers, as registered on the web server."""
    methods: dict[str, set[str]] = defaultdict(set)
    for route in app.web.web_app.router.routes():
        canonical = route.resource.canonical if route.resource is not None else ""
        methods[canonical].add(route.method)
    return methods


@pytest.mark.parametrize(("path", "twin"), [
    ("/incidents/", "/incidents"), ("/incidents", "/incidents/"), ("incidents", "/incidents/"),
    ("/review/{ticket_id}/approve", "/review/{ticket_id}/approve/"), ("/", None),
])
def test_slash_twin(path: str, twin: str | None) -> None:
    assert slash_twin(path) == twin


@pytest.mark.parametrize("role", ["all", "ingest"])
def test_every_registered_page_answers_on_both_slash_forms(role: str, tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, stage2=True, role=role)  # stage 2 on: its view is registered too
    app = build_worker_app(settings)[0] if role == "all" else build_ingest_app(settings)
    routes = _routes(app)
    expected = README_VIEWS if role == "all" else {"/metrics", "/readyz", "/ingest/alertmanager"}
    assert expected <= {p.rstrip("/") for p in routes}, sorted(routes)
    missing = {path: sorted(methods) for path, methods in routes.items()
               if routes.get(slash_twin(path) or path) != methods}
    assert not missing, f"pages without their other slash form (or with other methods there): {missing}"
