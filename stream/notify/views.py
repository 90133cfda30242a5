"""The notify stage's web views: silences (`POST/GET/DELETE /silences`) and what it pages (`GET /notify`).

    POST   /silences              {"matchers": [{"name", "value", "isRegex"?, "isEqual"?}], "startsAt"?, "endsAt",
                                   "comment"?}: a new silence (Alertmanager's shape); 200 {"silenceID": id}
    GET    /silences              every silence, with its state (pending, active, expired)
    GET    /silences/{id}         one silence
    DELETE /silences/{id}         ends it now (Alertmanager's expire); 200 with the silence as it ends
    GET    /notify                the stage's partitions, receivers, subjects, outbox, silences
    GET    /notify/{id}           one incident or cause as notify sees it: status (held, paged, silenced,
                                  grouped, resolved, ...), targets, silenced_by, acked_by

`createdBy` is the name of the operator token the request carried (stream/auth.py: operators write, readers
read); without tokens configured, the body's `createdBy` or `anonymous`. A silence is sent to every partition
of the control topic (each partition's fold sees all of them) and kept in the changelog-backed notify table;
it expires on its own (listed until `notify_retention` after its end). Errors are problem documents:
400 `invalid_body` with the fields, 404 `not_found`, 503 `recovering` while the worker has no notify state yet.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

import orjson
from faust.web import View
from pydantic import ValidationError

from correlator.notify import Silence, status_of
from correlator.readmodel import ReadModel, silences_of
from correlator.validation import FieldError, field_errors
from stream.app import App
from stream.auth import actor_of
from stream.ingest import RETRY_AFTER_S
from stream.notify.stage import ControlRecord, Notify
from stream.problems import problem_response

__all__ = ["install_notify_views", "silence_of", "silence_view"]


def silence_view(silence: Silence, now: float) -> dict[str, Any]:
    """A silence as the API shows it: Alertmanager's fields and its state at `now`."""
    state = "pending" if now < silence.starts_at else "active" if silence.active(now) else "expired"
    return {**silence.model_dump(mode="json", by_alias=True), "status": {"state": state}}


def silence_of(body: Any, actor: str | None, now: float) -> Silence | list[FieldError]:
    """A new silence from a request body, or what is wrong with it; the creator is the token's name."""
    if not isinstance(body, dict):
        return [FieldError("body", "a JSON object is required")]
    named = body.get("createdBy")
    if actor is not None and named is not None and named != actor:
        return [FieldError("createdBy", f"the creator is the name of the token used ({actor!r}); leave it out")]
    doc = {"startsAt": now, **body, "id": uuid.uuid4().hex, "createdBy": actor or named or "anonymous"}
    try:
        return Silence.model_validate(doc)
    except ValidationError as exc:
        return field_errors(exc)


def _invalid(request: Any, errors: list[FieldError]) -> Any:
    detail = "; ".join(f"{e.field}: {e.reason}" for e in errors)
    return problem_response(request, 400, "invalid_body", detail, errors=errors)


def _unready(request: Any, notify: Notify) -> Any | None:
    if notify.desk.ready() and notify.stores:
        return None
    return problem_response(request, 503, "recovering", "the notify state is not loaded here yet, try again shortly",
                            headers={"Retry-After": str(RETRY_AFTER_S)})


def _unknown(request: Any, what: str, item_id: str) -> Any:
    return problem_response(request, 404, "not_found", f"unknown {what} {item_id}")


async def create_silence(view: View, notify: Notify, request: Any) -> Any:
    """`POST /silences`."""
    raw = await request.read()
    try:
        body = orjson.loads(raw) if raw.strip() else {}
    except orjson.JSONDecodeError as exc:
        return _invalid(request, [FieldError("body", f"malformed JSON: {exc}")])
    silence = silence_of(body, actor_of(request), time.time())
    if isinstance(silence, list):
        return _invalid(request, silence)
    await notify.send_control(silence.id, ControlRecord(kind="silence", silence=silence), everywhere=True)
    return view.json({"silenceID": silence.id})


def _silence(request: Any, notify: Notify, silence_id: str) -> Silence | Any:
    """The silence, or the problem answer saying why this worker cannot show it."""
    unready = _unready(request, notify)
    if unready is not None:
        return unready
    silence = notify.silences().get(silence_id)
    return silence if silence is not None else _unknown(request, "silence", silence_id)


async def expire_silence(view: View, notify: Notify, request: Any, silence_id: str) -> Any:
    """`DELETE /silences/{id}`."""
    silence = _silence(request, notify, silence_id)
    if not isinstance(silence, Silence):
        return silence
    now = time.time()
    await notify.send_control(silence_id, ControlRecord(kind="expire", silence_id=silence_id, at=now),
                              everywhere=True)
    ended = silence if silence.ends_at <= now else silence.model_copy(update={"ends_at": max(now, silence.starts_at)})
    return view.json(silence_view(ended, now))


def subject_view(notify: Notify, subject_id: str) -> dict[str, Any] | None:
    """One subject as notify sees it, or None when no owned partition holds it."""
    for store in notify.stores.values():
        subject = store.state.subjects.get(subject_id)
        if subject is not None:
            return {"id": subject.id, "kind": subject.kind, "status": status_of(subject, notify.policy),
                    "severity": subject.severity, "services": subject.services, "parent_id": subject.parent_id,
                    "silenced_by": subject.silenced_by, "muted": subject.muted, "acked_by": subject.acked_by,
                    "targets": {name: {"phase": t.phase, "sent_at": t.sent_at, "acked": t.acked}
                                for name, t in subject.targets.items()}}
    return None


def install_notify_views(app: App, notify: Notify, model: ReadModel | None = None) -> None:
    """Register the silence and notify views on the app's web server; with the cluster's read model, `GET
    /silences` lists every silence of the cluster (the control topic's), not only those of owned partitions, once
    the model has read the topic to where it stood at start (before, the owned partitions answer, or 503)."""

    @app.page("/silences")
    class Silences(View):
        async def get(self, request: Any) -> Any:
            now = time.time()
            if model is not None and model.whole:
                shown = silences_of(model, now, notify.policy.retention_s)
            else:
                unready = _unready(request, notify)
                if unready is not None:
                    return unready
                shown = sorted(notify.silences().values(), key=lambda s: (s.starts_at, s.id))
            return self.json({"silences": [silence_view(s, now) for s in shown]})

        async def post(self, request: Any) -> Any:
            return await create_silence(self, notify, request)

    @app.page("/silences/{silence_id}")
    class OneSilence(View):
        async def get(self, request: Any, silence_id: str) -> Any:
            silence = _silence(request, notify, silence_id)
            if not isinstance(silence, Silence):
                return silence
            return self.json(silence_view(silence, time.time()))

        async def delete(self, request: Any, silence_id: str) -> Any:
            return await expire_silence(self, notify, request, silence_id)

    @app.page("/notify")
    class Status(View):
        async def get(self, request: Any) -> Any:
            return self.json(notify.status())

    @app.page("/notify/{subject_id}")
    class OneSubject(View):
        async def get(self, request: Any, subject_id: str) -> Any:
            shown = subject_view(notify, subject_id)
            if shown is None:
                return _unknown(request, "incident", subject_id)
            return self.json(shown)
