"""What a source sent about the correlator itself and about mutes, read where raw records become alerts. Pure.

The loop guard: an `alertmanager` receiver of the notify stage posts each incident as one alert
(`correlator.notify.payloads.alertmanager_alert`); a team's Alertmanager that also routes everything to the
correlator's `/ingest/alertmanager` would send it straight back, and the correlator would correlate its own page as
a fresh incident, forever. The rule: an alert whose labels carry `alertname="CorrelatedIncident"` and an
`incident_id` is the correlator's own and is not correlated again. It is left out (and counted) where raw records
become alerts, after the adapter and before the engine (`correlator.sources.normalize`, the one parse of the
ingest and the normalize agent), so the record is kept on `alerts.raw` and never dead-lettered: it is not bad input.

Mutes at the source: Alertmanager marks an alert it silenced or inhibited in `status.silencedBy` /
`status.inhibitedBy` (API v2 alerts), Zabbix a problem in maintenance (`maintenance` / `suppressed` in the
media type's parameters). `source_mute` reads those from an alert and `mark_source_mute` stamps the alert with
the label `aiops_muted` (the reason) — or `none` when the source reported a mute state and it was unmuted — so
that the incident's `entities` carry it (the label is among the engine's entity labels). The notify stage decides
from those marks whether an incident pages (`correlator.notify.silences.incident_mute`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final, Literal

from correlator.models import Alert

__all__ = [
    "INCIDENT_ALERTNAME",
    "INCIDENT_ID_LABEL",
    "MUTE_LABEL",
    "NOT_MUTED",
    "MuteReason",
    "is_own_incident_alert",
    "mark_source_mute",
    "screen_alerts",
    "source_mute",
    "without_own_alerts",
]

INCIDENT_ALERTNAME: Final = "CorrelatedIncident"
"""`alertname` of every alert the correlator posts to an Alertmanager."""
INCIDENT_ID_LABEL: Final = "incident_id"
"""The label that names the incident on such an alert."""
MUTE_LABEL: Final = "aiops_muted"
"""Label a muted alert carries (its reason), so the incident's entities show it."""
NOT_MUTED: Final = "none"
"""The label's value on an alert whose source reported its mute state and it was not muted."""

MuteReason = Literal["silenced", "inhibited", "maintenance"]


def is_own_incident_alert(labels: Mapping[str, str]) -> bool:
    """Whether an alert with these labels is an incident the correlator itself posted."""
    return labels.get("alertname") == INCIDENT_ALERTNAME and bool(labels.get(INCIDENT_ID_LABEL))


def without_own_alerts(alerts: Sequence[Alert]) -> tuple[list[Alert], int]:
    """The alerts to correlate, and how many were the correlator's own incidents (left out)."""
    kept = [a for a in alerts if not is_own_incident_alert(a.labels)]
    return kept, len(alerts) - len(kept)


def _truthy(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() not in ("", "0", "false", "no", "none")
    return bool(value)


def _reported(alert: Alert) -> tuple[bool, MuteReason | None]:
    """(whether the source reported a mute state at all, the mute it reported)."""
    status = alert.extra.get("status")
    marks = status if isinstance(status, dict) else alert.extra
    reported = "silencedBy" in marks or "inhibitedBy" in marks
    if _truthy(marks.get("silencedBy")):
        return True, "silenced"
    if _truthy(marks.get("inhibitedBy")):
        return True, "inhibited"
    if isinstance(status, dict) and status.get("state") == "suppressed":
        return True, "silenced"
    for field in ("maintenance", "suppressed"):  # Zabbix's media type parameters
        if field in alert.extra:
            reported = True
            if _truthy(alert.extra[field]):
                return True, "maintenance"
    return reported, None


def source_mute(alert: Alert) -> MuteReason | None:
    """Why the alert's source muted it (Alertmanager silence or inhibition, Zabbix maintenance), or None."""
    return _reported(alert)[1]


def mark_source_mute(alert: Alert) -> Alert:
    """The alert with the `aiops_muted` label when its source reported a mute state; unchanged otherwise."""
    reported, reason = _reported(alert)
    if not reported:
        return alert
    return alert.model_copy(update={"labels": {**alert.labels, MUTE_LABEL: reason or NOT_MUTED}})


def screen_alerts(alerts: Sequence[Alert]) -> tuple[list[Alert], int]:
    """The one call where alerts are parsed: the correlator's own incidents left out (counted), and each alert
    its source muted (Alertmanager silence or inhibition, Zabbix maintenance) labelled `aiops_muted`."""
    kept, own = without_own_alerts(alerts)
    return [mark_source_mute(a) for a in kept], own
