"""The notify file: receivers and routes (YAML or JSON), validated with unknown keys refused. Pure.

```yaml
defaults: {hold: {for: 30s, alerts: 5}, renotify: 4h}   # every route's unless it says otherwise (these
                                                        # are the defaults but `alerts`, which is off)
link: "https://aiops.example/incidents/"                # the incident's id is appended (the page's link)
receivers:
  - {name: oncall, type: pagerduty, routing_key: "R0UTINGKEY"}        # url: Events API v2 by default
  - {name: chat, type: slack, url: "https://hooks.slack.com/services/T/B/X"}
  - {name: hook, type: webhook, url: "http://127.0.0.1:9/hook", secret: "s3cret"}
  - {name: am, type: alertmanager, url: "http://127.0.0.1:9093", repost: 1m}
routes:                      # first match wins; `continue: true` goes on to the next
  - {match: {severity: critical}, receiver: oncall, continue: true}
  - {match_re: {service: "checkout|payments"}, receiver: chat, hold: {for: 2m}}
  - {receiver: hook}         # no matchers: the default
```

Every receiver takes `timeout` (one attempt), `retries` (attempts after the first), `rate_limit` (`{count, per}`:
at most `count` notifications per `per`; later ones wait their turn) and `send_resolved` (default true).
Durations are seconds or `30s`, `10m`, `4h` as everywhere else. A route's `hold` keeps a new incident back until
it has lasted `for` or reached `alerts` alerts (whichever first; `critical_at_once: true`, the default, pages a
critical one at once); `renotify` repeats the page while the incident is open (0: never).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from functools import cached_property
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    model_validator,
)

from correlator.config import parse_duration
from correlator.configfiles import file_error_line, load_document
from correlator.notify.silences import Matcher

__all__ = [
    "PAGERDUTY_EVENTS_URL",
    "AlertmanagerReceiver",
    "Hold",
    "NotifyConfig",
    "NotifyFileError",
    "PagerDutyReceiver",
    "RateLimit",
    "Receiver",
    "Route",
    "SlackReceiver",
    "WebhookReceiver",
    "parse_notify",
]

PAGERDUTY_EVENTS_URL = "https://events.pagerduty.com/v2/enqueue"
"""PagerDuty Events API v2, where a `pagerduty` receiver sends unless it names another `url`."""

Seconds = Annotated[float, BeforeValidator(parse_duration), Field(ge=0)]
"""A duration in seconds; "30s", "10m", "4h" accepted."""


def _compiles(pattern: str) -> str:
    try:
        re.compile(pattern)
    except re.error as exc:
        raise ValueError(f"not a regular expression: {exc}") from None
    return pattern


Pattern = Annotated[str, AfterValidator(_compiles)]
"""A regular expression, anchored at both ends when matched (as Alertmanager's `match_re`)."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class RateLimit(_Strict):
    """At most `count` notifications to one receiver per `per` seconds; the rest wait their turn, in order."""

    count: int = Field(ge=1)
    per: Seconds = Field(gt=0)


class Hold(_Strict):
    """How long a new incident is held back before it pages: until it lasted `for` or has `alerts` alerts."""

    for_s: Seconds = Field(default=30.0, alias="for", description="Alertmanager's group_wait default; 0: none")
    alerts: int = Field(default=0, ge=0, description="0: the count does not end the hold early")
    critical_at_once: bool = True


class _ReceiverBase(_Strict):
    name: str = Field(min_length=1)
    timeout: Seconds = Field(default=10.0, gt=0, description="one attempt's limit")
    retries: int = Field(default=5, ge=0, description="attempts after the first before the notification is "
                         "dead-lettered")
    rate_limit: RateLimit | None = None
    send_resolved: bool = True


class PagerDutyReceiver(_ReceiverBase):
    """PagerDuty Events API v2: trigger, acknowledge, resolve; `dedup_key` is the incident id."""

    type: Literal["pagerduty"]
    routing_key: str = Field(min_length=1)
    url: str = PAGERDUTY_EVENTS_URL
    client: str = "aiops-correlator"


class SlackReceiver(_ReceiverBase):
    """A Slack incoming webhook: one message per notification."""

    type: Literal["slack"]
    url: str = Field(min_length=1)
    channel: str | None = None


class WebhookReceiver(_ReceiverBase):
    """Any HTTP endpoint: the notification as JSON, signed with HMAC-SHA256 when a `secret` is given."""

    type: Literal["webhook"]
    url: str = Field(min_length=1)
    secret: str | None = None
    headers: dict[str, str] = Field(default_factory=dict)


class AlertmanagerReceiver(_ReceiverBase):
    """An Alertmanager (API v2): one alert per incident, re-posted every `repost` while open, ended on resolve."""

    type: Literal["alertmanager"]
    url: str = Field(min_length=1, description="the Alertmanager's base URL; /api/v2/alerts is appended")
    repost: Seconds = Field(default=60.0, gt=0, description="how often an open incident's alert is re-posted; "
                            "its endsAt is set four times this ahead, as Prometheus does")
    labels: dict[str, str] = Field(default_factory=dict, description="extra labels on every alert (a team, ...)")


Receiver = Annotated[PagerDutyReceiver | SlackReceiver | WebhookReceiver | AlertmanagerReceiver,
                     Field(discriminator="type")]
"""One receiver, told apart by `type`."""


class Route(_Strict):
    """One route: matchers (all must hold), its receiver, and whether matching goes on to the next route."""

    match: dict[str, str] = Field(default_factory=dict)
    match_re: dict[str, Pattern] = Field(default_factory=dict)
    receiver: str = Field(min_length=1)
    continue_: bool = Field(default=False, alias="continue")
    hold: Hold | None = Field(default=None, description="unset: the file's default hold")
    renotify: Seconds | None = Field(default=None, description="unset: the file's default; 0: never")
    escalations: bool = Field(default=True, description="SLA escalations of its incidents are sent here too")

    @cached_property
    def matchers(self) -> tuple[Matcher, ...]:
        """`match` and `match_re` as silence matchers: one matching rule for routes and silences."""
        return (*(Matcher(name=n, value=v) for n, v in self.match.items()),
                *(Matcher(name=n, value=v, is_regex=True) for n, v in self.match_re.items()))

    def matches(self, labels: Mapping[str, Sequence[str]]) -> bool:
        """Whether every matcher holds; a label with several values (a cause's services) holds when any does."""
        return all(m.holds(labels) for m in self.matchers)


class Defaults(_Strict):
    """What a route leaves unset."""

    hold: Hold = Field(default_factory=Hold)
    renotify: Seconds = 4 * 3600.0


class NotifyConfig(_Strict):
    """The whole notify file."""

    receivers: list[Receiver] = Field(default_factory=list)
    routes: list[Route] = Field(default_factory=list)
    defaults: Defaults = Field(default_factory=Defaults)
    link: str = Field(default="http://localhost:6066/incidents/", description="the incident's id is appended: "
                      "the link in every page")
    source: str = Field(default="aiops-correlator", description="PagerDuty's `source` when no host is known")

    @model_validator(mode="after")
    def _receivers_known(self) -> NotifyConfig:
        names = [r.name for r in self.receivers]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"receiver names given twice: {', '.join(twice)}")
        for i, route in enumerate(self.routes):
            if route.receiver not in names:
                raise ValueError(f"routes[{i}].receiver: unknown receiver {route.receiver!r} "
                                 f"(receivers: {', '.join(names) or 'none'})")
        return self

    def receiver(self, name: str) -> PagerDutyReceiver | SlackReceiver | WebhookReceiver | AlertmanagerReceiver:
        """The receiver called `name` (KeyError when there is none)."""
        for receiver in self.receivers:
            if receiver.name == name:
                return receiver
        raise KeyError(name)

    def hold_of(self, route: Route) -> Hold:
        """The route's hold, or the default one."""
        return route.hold if route.hold is not None else self.defaults.hold

    def renotify_of(self, route: Route) -> float:
        """The route's re-notify interval in seconds, or the default one (0: never)."""
        return route.renotify if route.renotify is not None else self.defaults.renotify


class NotifyFileError(ValueError):
    """The notify file cannot be used: one line naming the place and the reason."""


_INNER: dict[str, type[BaseModel]] = {"routes": Route, "defaults": Defaults}
_BY_TYPE: dict[str, type[BaseModel]] = {"pagerduty": PagerDutyReceiver, "slack": SlackReceiver,
                                        "webhook": WebhookReceiver, "alertmanager": AlertmanagerReceiver}


def _known_keys(loc: tuple[int | str, ...]) -> Sequence[str]:
    """The keys allowed where an unknown one was found (by its location in the file)."""
    model: type[BaseModel] = NotifyConfig
    if len(loc) > 1 and loc[0] == "receivers" and len(loc) > 2:
        model = _BY_TYPE.get(str(loc[2]), NotifyConfig)
        if len(loc) > 4 and loc[3] == "rate_limit":
            model = RateLimit
    elif len(loc) > 1 and str(loc[0]) in _INNER:
        model = _INNER[str(loc[0])]
        if "hold" in loc:
            model = Hold
    return [info.alias or name for name, info in model.model_fields.items()]


def parse_notify(text: str | bytes, *, fmt: str | None = None) -> NotifyConfig:
    """The notify file's text (YAML or JSON) as a `NotifyConfig`; `NotifyFileError` with one line otherwise."""
    try:
        doc: Any = load_document(text, fmt)
    except ValueError as exc:
        raise NotifyFileError(str(exc)) from None
    if doc is None:
        doc = {}
    if not isinstance(doc, dict):
        raise NotifyFileError(f"expected a mapping at the top, got {type(doc).__name__}")
    try:
        return NotifyConfig.model_validate(doc)
    except ValidationError as exc:
        line = file_error_line(exc, "notify", _known_keys)
        # a check across fields names its own place; `body` would only stand in front of it
        raise NotifyFileError(line.removeprefix("body: ")) from None
