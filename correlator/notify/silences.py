"""Silences (maintenance windows) and mutes set at the source: they stop pages, never correlation. Pure.

A `Silence` is Alertmanager's shape: matchers on the incident's labels (all must hold), `starts_at`, `ends_at`,
`created_by` (the operator token's name), `comment`. It is active from `starts_at` until `ends_at` and expires on
its own: `active_silences` leaves out the ended ones and `expired` names those to purge.

Mutes at the source are read from each alert where it is parsed (`correlator.sources.screening`), which labels a
muted alert `aiops_muted`. An incident is muted at the source when its members report mutes and none reported
`none` (`incident_mute`): a mixed incident pages.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Annotated

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from correlator.sources.generic import epoch_of
from correlator.sources.screening import MUTE_LABEL, NOT_MUTED

__all__ = [
    "Matcher",
    "Silence",
    "active_silences",
    "expire",
    "expired",
    "incident_mute",
    "silenced_by",
]


def _moment(value: object) -> float:
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


def incident_mute(entities: Mapping[str, Sequence[str]]) -> str | None:
    """The mute of an incident from its members' marks: their reasons when every marked member was muted."""
    marks = list(entities.get(MUTE_LABEL, ()))
    if not marks or NOT_MUTED in marks:
        return None
    return ",".join(sorted(marks))
