"""The response stage's decisions: routes, payloads, noise controls, silences. Pure.

`state.on_record` folds incident, cause, assignment, escalation and acknowledgement records into the notify
state and returns the deliveries due; `state.on_tick` is its timer (holds, silences ending, re-notify, rate
limits). `stream/notify/` sends the deliveries.
"""

from .config import NotifyConfig, NotifyFileError, parse_notify
from .models import Acknowledgement, Action, Delivery, Handover, Subject, Target
from .payloads import build_request, sign, verify_signature
from .routes import labels_of, routes_for
from .silences import Matcher, Silence, incident_mute, silenced_by
from .state import (
    Escalation,
    NotifyPolicy,
    NotifyRecord,
    NotifyState,
    RECONCILED,
    Step,
    on_record,
    on_tick,
    status_of,
)

__all__ = [
    "Acknowledgement", "Action", "Delivery", "Escalation", "Handover", "Matcher", "NotifyConfig", "NotifyFileError",
    "NotifyPolicy", "NotifyRecord", "NotifyState", "RECONCILED", "Silence", "Step", "Subject", "Target", "build_request",
    "incident_mute", "labels_of", "on_record", "on_tick", "parse_notify", "routes_for", "sign", "silenced_by",
    "status_of", "verify_signature",
]
