"""Triage that learns from its reviewers, end to end on the embedded broker: an override lands on `tickets.labels`,
`aiops triage train --broker` builds an artifact from it, the running worker loads it, and the next ticket's
decision names the model and cites the reviewed ticket; the review queue shows the neighbours and a proposal."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from stream.broker import EmbeddedBroker

from .paths import ROOT
from .ticketing import call, sla_env, ticket, wait_events, wait_ready, wait_until
from .workers import Deployment

pytestmark = pytest.mark.integration

ODD = "Kases aparāts veikalā Nr. 12 drukā tukšus čekus"  # no taxonomy rule fires: the rules hold it for review
ODD_AGAIN = "Kases aparats veikala Nr. 14 druka tuksus cekus"  # the same complaint, without diacritics


def _status(worker: object) -> str:
    status, body = call(worker, "GET", "/sla")  # type: ignore[arg-type]
    return str(body.get("triage_model", "")) if status == 200 else ""


def test_an_override_trains_a_model_the_worker_loads_and_cites(broker: EmbeddedBroker, tmp_path: Path) -> None:
    models = tmp_path / "models"
    dep = Deployment(broker, tmp_path, extra_env={**sla_env(), "AIOPS_TRIAGE_MODEL_DIR": str(models),
                                                  "AIOPS_TRIAGE_MODEL_CHECK": "0.5"})
    dep.create_topics()
    worker = dep.start_worker()
    try:
        wait_ready(worker)
        assert "rules alone (no model artifact" in _status(worker)
        dep.produce("tickets_raw", [ticket("L-1", ODD)])
        first = wait_events(dep, "L-1", lambda ev: len(ev) >= 1, 30, worker)[0]
        assert (first["status"], first["model_version"]) == ("human_review", None)
        change = {"who": "bob", "severity": "sev3", "taxonomy_code": "service.customer_request"}
        status, event = call(worker, "POST", "/review/L-1/override", change)
        assert status == 200, event

        done = subprocess.run([sys.executable, "-m", "stream.cli", "triage", "train", "--broker", broker.url,
                               "--out", str(models)], cwd=ROOT, env=dep.env(), capture_output=True, text=True,
                              timeout=240, check=False)
        assert done.returncode == 0, done.stderr
        assert "tickets.labels 1" in done.stdout or "override 1" in done.stdout, done.stdout
        version = done.stdout.split()[1]
        wait_until(lambda: version in _status(worker) or None, 60, "the worker to load the model", worker)

        dep.produce("tickets_raw", [ticket("L-2", ODD_AGAIN)])
        decided = wait_events(dep, "L-2", lambda ev: len(ev) >= 1, 30, worker)[0]
        assert decided["model_version"] == version
        assert "similar labelled: L-1 service.customer_request/sev3" in decided["reason"]
        status, record = call(worker, "GET", "/review/L-2")
        assert status == 200 and record["similar"][0]["ticket_id"] == "L-1"
        assert record["proposal"]["taxonomy_code"] == "service.customer_request"
        assert record["proposed_by"] == version and record["latest"]["model_version"] == version
    finally:
        worker.stop()
