"""After a broker restart notify resolves the page of an incident whose close the broker took (session 39).

The memory broker takes with it every record of `incidents` notify had not read. A close among them (stage 1's
`resolved` or `expired`) is never said again: stage 1 keeps only open incidents. So notify held the incident firing:
its page never cleared (or, not yet paged, it paged alone at the cause wait: session 38's chaos soak, mechanism 1b).
Stage 1 now says after a loss which incidents it holds open (`Census`), and notify closes the rest
(`Settings.reconcile_after_loss`; off, the old behaviour). Notify is made to lag by `tests.deaf_worker notify`: it
reads nothing from when the flag appears until the loss. Kept free of the new names so that it runs on the code
before the change too (it fails there: no resolve)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from stream.broker import start_broker

from .test_broker_faults import _restart_empty
from .test_ingest import wait_ready
from .test_notify_pipeline import T0, failure, ndjson
from .test_notify_refused_checkpoint import ROUTES, pager, triggers, wait_for  # noqa: F401 - pager: a fixture
from .receivers import Receiver
from .workers import PATIENT_ADMISSION, Deployment


@pytest.mark.integration
@pytest.mark.parametrize("reconcile", [True, False])
def test_a_page_whose_close_the_broker_took_is_resolved_after_the_restart(
        tmp_path: Path, pager: Receiver, reconcile: bool) -> None:  # noqa: F811 - pager: the fixture
    """A lone critical incident pages; notify stops reading; the fault ends and stage 1 publishes the close (seen on
    `incidents` by the console); the broker restarts empty. With the reconciliation the page is resolved, once,
    with no new page; without it (`AIOPS_RECONCILE_AFTER_LOSS=false`, the old behaviour) it never is."""
    routes = tmp_path / "notify.yaml"
    routes.write_text(ROUTES.format(hold=0, url=pager.url))
    brokers = [start_broker(log_path=tmp_path / "tansu-1.log")]
    dep = Deployment(brokers[0], tmp_path, extra_env={
        "AIOPS_IDLE_ADVANCE": "300", "AIOPS_NOTIFY_FILE": str(routes), **PATIENT_ADMISSION,
        "AIOPS_RECONCILE_AFTER_LOSS": str(reconcile).lower()})
    worker, deaf = dep.start_deaf_worker("notify")
    try:
        worker.wait_web()
        wait_ready(worker)
        fault = failure("db", "DBDown", T0)
        dep.produce("alerts_raw", [(b"generic", ndjson(fault))])
        [page] = wait_for(lambda: triggers(pager), 60, "the lone incident's page", worker)
        deaf.touch()
        resolved = [{**a, "status": "resolved", "ends_at": T0 + 200 + i} for i, a in enumerate(fault)]
        resolved += [{**a, "ends_at": T0 + 1200} for a in resolved]  # every partition's event time past the hold
        dep.produce("alerts_raw", [(b"generic", ndjson(resolved))])
        wait_for(lambda: worker.get(f"/incidents/{page}/")["status"] == "resolved", 90, "stage 1 closing it", worker)
        time.sleep(3)  # notify's deaf fold takes the close too, and drops it
        assert deaf.exists() and not triggers(pager, "resolve")
        _restart_empty(dep, worker, brokers, tmp_path)
        assert not deaf.exists()  # notify reads again from the loss on
        if reconcile:
            wait_for(lambda: page in triggers(pager, "resolve"), 60, "the page resolved by the reconciliation",
                     worker)
            time.sleep(3)
            assert triggers(pager, "resolve") == [page]
        else:
            time.sleep(20)
            assert not triggers(pager, "resolve")
        assert triggers(pager) == [page]  # paged once, never again
        assert worker.proc.poll() is None, worker.tail()
    finally:
        worker.stop()
        for b in brokers:
            b.stop()
