"""Source adapters: bytes as received (Alertmanager webhook, Zabbix event, generic JSON or NDJSON) into alerts.

Every adapter refuses a bad body as a whole with a `SourceError` naming the field path and the reason, so the
HTTP ingest can answer 400 with it and the normalize agent can dead-letter it; nothing is half-accepted.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import tzinfo
from typing import Final

import orjson

from correlator.eventtime import DEFAULT_GUARD, Guarded, TimeGuard, guard_alerts
from correlator.keys import DEFAULT_KEY_CONFIG, KeyConfig
from correlator.models import Alert
from correlator.records import AlertRecord, record_of
from correlator.sources import alertmanager, generic, zabbix
from correlator.sources.errors import SourceError
from correlator.sources.fast import alertmanager_records, generic_records
from correlator.sources.generic import DEFAULT_MAX_BYTES
from correlator.sources.screening import is_own_incident_alert, screen_alerts

__all__ = ["DEFAULT_MAX_BYTES", "SOURCES", "Normalized", "SourceError", "alerts_in", "detect_source", "normalize",
           "parse", "parse_arrived"]

SOURCES: Final = ("alertmanager", "zabbix", "generic")
"""The source names `parse` knows, in the order `detect_source` tries them."""


def parse(
    source: str,
    body: bytes,
    config: KeyConfig = DEFAULT_KEY_CONFIG,
    *,
    max_bytes: int | None = DEFAULT_MAX_BYTES,
    zabbix_timezone: str | tzinfo = "UTC",
    received_at: float | None = None,
) -> list[Alert]:
    """Alerts from one body of the named source; an unknown source or a bad body raises SourceError.

    `received_at` is when the body arrived, where the format needs it (Alertmanager-API-v2-style generic alerts
    carry no status: resolved when their `endsAt` has passed by then)."""
    if source == "alertmanager":
        return alertmanager.parse(body, config, max_bytes=max_bytes)
    if source == "zabbix":
        return zabbix.parse(body, config, max_bytes=max_bytes, timezone=zabbix_timezone)
    if source == "generic":
        return generic.parse(body, config, max_bytes=max_bytes, received_at=received_at)
    raise SourceError("source", f"unknown source {source!r}, expected one of {', '.join(SOURCES)}", source=source)


def parse_arrived(
    source: str,
    body: bytes,
    arrival: float,
    guard: TimeGuard = DEFAULT_GUARD,
    config: KeyConfig = DEFAULT_KEY_CONFIG,
    *,
    max_bytes: int | None = DEFAULT_MAX_BYTES,
    zabbix_timezone: str | tzinfo = "UTC",
) -> Guarded:
    """`parse`, then the event-time rule against the body's arrival (correlator/eventtime.py), for every source.

    What the normalize agent runs: future-dated alerts come back clamped and marked, alerts older than the
    horizon apart (`Guarded.too_old`) so that the caller dead-letters them without losing the body's others.
    """
    alerts = parse(source, body, config, max_bytes=max_bytes, zabbix_timezone=zabbix_timezone, received_at=arrival)
    return guard_alerts(alerts, arrival, guard)


@dataclass(slots=True)
class Normalized:
    """A body as alert records, what the event-time rule did (`guarded`: clamped count, too-old alerts), how
    many alerts each source named, and how many were the correlator's own incidents (`own`, left out: the loop
    guard, `correlator.sources.screening`)."""

    records: list[AlertRecord]
    by_source: dict[str, int]
    guarded: Guarded = field(default_factory=Guarded)
    own: int = 0


def normalize(source: str, body: bytes, arrival: float, guard: TimeGuard = DEFAULT_GUARD,
              config: KeyConfig = DEFAULT_KEY_CONFIG, *, max_bytes: int | None = DEFAULT_MAX_BYTES) -> Normalized:
    """One body into alert records: what both the HTTP ingest and the normalize agent run.

    Alertmanager webhooks and generic bodies of the regular shape take the typed fast path
    (`correlator.sources.fast`); anything else, and anything the fast path does not recognise, runs
    `parse_arrived`, which builds the records or raises the refusal (SourceError): the same records or the same
    refusal either way (tests/test_sources_fast.py).
    """
    fast = _fast(source, body, arrival, guard, config, max_bytes)
    # the correlator's own incidents, posted back through an Alertmanager, take the slow path to be left out
    if fast is not None and not any(is_own_incident_alert(r.labels) for r in fast[0]):
        return Normalized(*fast)
    guarded = parse_arrived(source, body, arrival, guard, config, max_bytes=max_bytes)
    alerts, own = screen_alerts(guarded.alerts)  # the loop guard and source mutes (screening.py)
    by_source: dict[str, int] = {}
    for alert in alerts:
        by_source[alert.source] = by_source.get(alert.source, 0) + 1
    return Normalized([record_of(a) for a in alerts], by_source, guarded, own)


def _fast(source: str, body: bytes, arrival: float, guard: TimeGuard, config: KeyConfig, max_bytes: int | None
          ) -> tuple[list[AlertRecord], dict[str, int]] | None:
    """The fast path's records and alerts per named source, or None: the adapter decides."""
    if source == "alertmanager":
        records = alertmanager_records(body, arrival, guard, config, max_bytes)
        return None if records is None else (records, {alertmanager.SOURCE: len(records)} if records else {})
    if source == "generic":
        return generic_records(body, arrival, guard, config, max_bytes)
    return None


def alerts_in(source: str, body: bytes, *, max_bytes: int | None = DEFAULT_MAX_BYTES) -> int:
    """How many alerts a body holds, refusing exactly what `parse` refuses (SourceError).

    What the HTTP ingest asks before it accepts a body. For Alertmanager, whose webhooks are the bulk of
    the traffic, the alerts are validated but not built; the other adapters validate while building.
    """
    if source == "alertmanager":
        return len(alertmanager.checked(body, max_bytes=max_bytes).alerts)
    return len(parse(source, body, max_bytes=max_bytes))


def detect_source(body: bytes, *, max_bytes: int | None = DEFAULT_MAX_BYTES) -> str:
    """The source a body most likely came from: "alertmanager", "zabbix", else "generic" (NDJSON included)."""
    if max_bytes is not None and len(body) > max_bytes:
        return "generic"  # not worth parsing: whichever parser gets it refuses it for its size
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return "generic"
    if isinstance(data, dict) and {"version", "alerts", "groupKey"} <= data.keys():
        return "alertmanager"
    return "zabbix" if zabbix.is_zabbix_event(data) else "generic"
