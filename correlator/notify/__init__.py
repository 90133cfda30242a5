"""The response stage's decisions: routes, payloads, noise controls, silences, the loop guard. Pure.

`state.on_record` folds incident, cause, assignment, escalation and acknowledgement records into the notify
state and returns the deliveries due; `state.on_tick` is its timer (holds, silences ending, re-notify, rate
limits). `stream/notify/` sends the deliveries.
"""

from .config import NotifyConfig, NotifyFileError, parse_notify
from .loopguard import INCIDENT_ALERTNAME, is_own_incident_alert, screen_alerts, without_own_alerts
from .models import Acknowledgement, Action, Delivery, Subject, Target
from .payloads import build_request, sign, verify_signature
from .routes import labels_of, routes_for
from .silences import (
    Matcher,
    Silence,
    incident_mute,
    mark_source_mute,
    silenced_by,
    source_mute,
)
from .state import (
    Escalation,
    NotifyPolicy,
    NotifyRecord,
    NotifyState,
    Step,
    on_record,
    on_tick,
    status_of,
)

__all__ = [
    "INCIDENT_ALERTNAME", "Acknowledgement", "Action", "Delivery", "Escalation", "Matcher", "NotifyConfig",
    "NotifyFileError", "NotifyPolicy", "NotifyRecord", "NotifyState", "Silence", "Step", "Subject", "Target",
    "build_request", "incident_mute", "is_own_incident_alert", "labels_of", "mark_source_mute", "on_record",
    "on_tick", "parse_notify", "routes_for", "screen_alerts", "sign", "silenced_by", "source_mute", "status_of",
    "verify_signature", "without_own_alerts",
]
