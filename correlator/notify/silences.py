"""Silences (maintenance windows) and mutes set at the source: they stop pages, never correlation. Pure.

A `Silence` is Alertmanager's shape: matchers on the incident's labels (all must hold), `starts_at`, `ends_at`,
`created_by` (the operator token's name), `comment`. It is active from `starts_at` until `ends_at` and expires on
its own: `active_silences` leaves out the ended ones and `expired` names those to purge.

Mutes at the source: Alertmanager marks an alert it silenced or inhibited in `status.silencedBy` /
`status.inhibitedBy` (API v2 alerts), Zabbix a problem in maintenance (`maintenance` / `suppressed` in the
media type's parameters). `source_mute` reads those from an alert and `mark_source_mute` stamps the alert with
the label `aiops_muted` (the reason) — or `none` when the source reported a mute state and it was unmuted — so
that the incident's `entities` carry it (the label is among the engine's entity labels). An incident is muted at
the source when its members report mutes and none reported `none` (`incident_mute`): a mixed incident pages.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Annotated, Any, Final, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from correlator.models import Alert

__all__ = [
    "MUTE_LABEL",
    "Matcher",
    "MuteReason",
    "Silence",
    "active_silences",
    "expire",
    "expired",
    "incident_mute",
    "mark_source_mute",
    "silenced_by",
    "source_mute",
]

MUTE_LABEL: Final = "aiops_muted"
"""Label a muted alert carries (its reason), so the incident's entities show it."""
NOT_MUTED: Final = "none"
"""The label's value on an alert whose source reported its mute state and it was not muted."""

MuteReason = Literal["silenced", "inhibited", "maintenance"]


def _moment(value: object) -> float:
    # Imported here: correlator.sources screens every parsed body with this package's loop guard and mutes, so a
    # module-level import would make the two packages import each other.
    from correlator.sources.generic import epoch_of

    seconds = epoch_of(value, "time", "silence")  # a SourceError is a ValueError: pydantic reports it in place
    if seconds is None:
        raise ValueError("a time is required, not Go's zero time")
    return seconds


Moment = Annotated[float, BeforeValidator(_moment)]
"""A silence's start or end: epoch seconds or an ISO 8601 string (as Alertmanager writes them)."""


class Matcher(BaseModel):
    """One matcher, Alertmanager's: `name` equals (or, with `isRegex`, fully matches) `value`; `isEqual: false`
    negates it."""

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    name: str = Field(min_length=1)
    value: str
    is_regex: bool = Field(default=False, alias="isRegex")
    is_equal: bool = Field(default=True, alias="isEqual")

    @model_validator(mode="after")
    def _pattern_compiles(self) -> Matcher:
        if self.is_regex:
            try:
                re.compile(self.value)
            except re.error as exc:
                raise ValueError(f"matcher {self.name}: not a regular expression: {exc}") from None
        return self

    def holds(self, labels: Mapping[str, Sequence[str]]) -> bool:
        """Whether the matcher holds; a label with several values (a cause's services) holds when any does."""
        values = labels.get(self.name) or ("",)
        if self.is_regex:
            hit = any(re.fullmatch(self.value, v) for v in values)
        else:
            hit = self.value in values
        return hit == self.is_equal


class Silence(BaseModel):
    """A silence: incidents whose labels match every matcher are not paged between `starts_at` and `ends_at`."""

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    id: str = Field(min_length=1)
    matchers: list[Matcher] = Field(min_length=1)
    starts_at: Moment = Field(alias="startsAt")
    ends_at: Moment = Field(alias="endsAt")
    created_by: str = Field(min_length=1, alias="createdBy")
    comment: str = ""

    @model_validator(mode="after")
    def _ends_after_start(self) -> Silence:
        if self.ends_at <= self.starts_at:
            raise ValueError("endsAt must be after startsAt")
        return self

    def active(self, now: float) -> bool:
        """Whether it silences at `now`."""
        return self.starts_at <= now < self.ends_at

    def matches(self, labels: Mapping[str, Sequence[str]]) -> bool:
        """Whether every matcher holds on `labels`."""
        return all(m.holds(labels) for m in self.matchers)


def active_silences(silences: Iterable[Silence], now: float) -> list[Silence]:
    """The silences in force at `now`."""
    return [s for s in silences if s.active(now)]


def expired(silences: Iterable[Silence], now: float, keep_s: float = 0.0) -> list[str]:
    """Ids of the silences that ended more than `keep_s` before `now` (to purge)."""
    return [s.id for s in silences if s.ends_at + keep_s <= now]


def expire(silence: Silence, at: float) -> Silence | None:
    """The silence as Alertmanager's expire at `at` leaves it: ended then, gone (None) if it had not started, the
    same silence if it had ended already."""
    if silence.ends_at <= at:
        return silence
    if at <= silence.starts_at:
        return None
    return silence.model_copy(update={"ends_at": at})


def silenced_by(silences: Iterable[Silence], labels: Mapping[str, Sequence[str]], now: float) -> list[str]:
    """Ids of the active silences that match `labels`, sorted (empty: not silenced)."""
    return sorted(s.id for s in silences if s.active(now) and s.matches(labels))


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


def incident_mute(entities: Mapping[str, Sequence[str]]) -> str | None:
    """The mute of an incident from its members' marks: their reasons when every marked member was muted."""
    marks = list(entities.get(MUTE_LABEL, ()))
    if not marks or NOT_MUTED in marks:
        return None
    return ",".join(sorted(marks))
