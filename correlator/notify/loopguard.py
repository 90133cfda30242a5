"""The loop guard: an incident the correlator posted to an Alertmanager must not come back as a new alert. Pure.

An `alertmanager` receiver posts each incident as one alert (`payloads.alertmanager_alert`); a team's
Alertmanager that also routes everything to the correlator's `/ingest/alertmanager` would send it straight back,
and the correlator would correlate its own page as a fresh incident, forever. The rule: an alert whose labels
carry `alertname="CorrelatedIncident"` and an `incident_id` is the correlator's own and is not correlated
again. It plugs in where raw records become alerts, after the adapter and before the engine (the normalize
step, and the ingest's parse for the count it answers), so the record is kept on `alerts.raw` and counted,
never dead-lettered: it is not bad input.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Final

from correlator.models import Alert
from correlator.notify.silences import mark_source_mute

__all__ = ["INCIDENT_ALERTNAME", "INCIDENT_ID_LABEL", "is_own_incident_alert", "screen_alerts", "without_own_alerts"]

INCIDENT_ALERTNAME: Final = "CorrelatedIncident"
"""`alertname` of every alert the correlator posts to an Alertmanager."""
INCIDENT_ID_LABEL: Final = "incident_id"
"""The label that names the incident on such an alert."""


def is_own_incident_alert(labels: Mapping[str, str]) -> bool:
    """Whether an alert with these labels is an incident the correlator itself posted."""
    return labels.get("alertname") == INCIDENT_ALERTNAME and bool(labels.get(INCIDENT_ID_LABEL))


def without_own_alerts(alerts: Sequence[Alert]) -> tuple[list[Alert], int]:
    """The alerts to correlate, and how many were the correlator's own incidents (left out)."""
    kept = [a for a in alerts if not is_own_incident_alert(a.labels)]
    return kept, len(alerts) - len(kept)


def screen_alerts(alerts: Sequence[Alert]) -> tuple[list[Alert], int]:
    """The one call where alerts are parsed: the correlator's own incidents left out (counted), and each alert
    its source muted (Alertmanager silence or inhibition, Zabbix maintenance) labelled `aiops_muted`."""
    kept, own = without_own_alerts(alerts)
    return [mark_source_mute(a) for a in kept], own
