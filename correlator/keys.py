"""How an alert gets its correlation key (`scope/service/symptom`) and its fingerprint when the source gives none.

The scope is a hard boundary (DESIGN.md): alerts of two clusters, environments or regions never share a key,
so no incident, and no stage-2 parent, ever holds two of them. An alert that carries none of the scope labels
has an empty scope and the key is `service/symptom`, as before scopes existed, so ids of unscoped sources are
unchanged. A scope is written `label=value[,label=value]` in the configured order: the `=` is what tells a
scoped key's first part from a service name.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass

import orjson

__all__ = [
    "KeyConfig",
    "DEFAULT_KEY_CONFIG",
    "correlation_key",
    "scope_pairs",
    "fingerprint_of_labels",
    "key_label",
    "normalize_symptom",
    "scope_of",
    "service_of",
    "split_key",
]


@dataclass(frozen=True, slots=True, kw_only=True)
class KeyConfig:
    """Which labels name the service and the symptom, in order of preference (DESIGN.md, correlation semantics)."""

    service_labels: tuple[str, ...] = ("service", "job", "app", "host", "instance")
    symptom_labels: tuple[str, ...] = ("alertname",)
    unknown_service: str = "unknown"
    scope_labels: tuple[str, ...] = ("cluster", "environment", "env", "region")
    """Labels that bound correlation: two alerts whose values differ never meet (namespace only if added)."""


DEFAULT_KEY_CONFIG = KeyConfig()

_PORT = re.compile(r":\d+$")
_SPACE = re.compile(r"\s+")
_NUMBER = re.compile(r"(?<![\w.])\d+(?:\.\d+)?(?![\w.])")


def service_of(labels: Mapping[str, str], config: KeyConfig = DEFAULT_KEY_CONFIG) -> str:
    """The service an alert belongs to: the first non-empty preferred label; an `instance` loses its port."""
    for name in config.service_labels:
        value = labels.get(name)
        if value:
            return _PORT.sub("", value) if name == "instance" else value
    return config.unknown_service


def scope_of(labels: Mapping[str, str], config: KeyConfig = DEFAULT_KEY_CONFIG) -> str:
    """The alert's scope: `label=value` for each configured scope label it carries, in config order, or ""."""
    return ",".join(f"{name}={labels[name]}" for name in config.scope_labels if labels.get(name))


def correlation_key(scope: str, service: str, symptom: str) -> str:
    """The one way a correlation key is written: `scope/service/symptom`, or `service/symptom` unscoped."""
    return f"{scope}/{service}/{symptom}" if scope else f"{service}/{symptom}"


def split_key(key: str) -> tuple[str, str, str]:
    """(scope, service, symptom) of a correlation key; the inverse of `correlation_key`."""
    head, _, rest = key.partition("/")
    if "=" in head and rest:
        service, _, symptom = rest.partition("/")
        return head, service, symptom
    return "", head, rest


def key_label(key: str) -> str:
    """A key as a person reads it: `service/symptom`, then the scope in brackets when there is one."""
    scope, service, symptom = split_key(key)
    return f"{service}/{symptom} [{scope}]" if scope else key


def normalize_symptom(name: str, host: str | None = None) -> str:
    """A symptom name stable across instances: host mentions and free-standing numbers are taken out.

    "High CPU on db1 (95%)" and "High CPU on db2 (97%)" must meet under one key, while "5xx" or
    "HighErrorRate" stay as written: identifiers are kept, only the variable parts are masked.
    """
    text = name.strip()
    if host:
        text = text.replace(host, "").replace(" on ", " ").strip()
    text = _NUMBER.sub("#", text)
    return _SPACE.sub(" ", text).strip(" :-") or "unnamed"


def fingerprint_of_labels(labels: Mapping[str, str]) -> str:
    """A stable 16-hex-digit fingerprint of a label set, independent of label order."""
    blob = orjson.dumps(dict(sorted(labels.items())))
    return hashlib.blake2b(blob, digest_size=8).hexdigest()


def scope_pairs(scope: str) -> dict[str, str]:
    """The labels a scope names (`cluster=a,env=prod` -> {"cluster": "a", "env": "prod"}); the inverse of `scope_of`."""
    return dict(part.split("=", 1) for part in scope.split(",") if "=" in part)
