"""How an alert gets its correlation key (`service/symptom`) and its fingerprint when the source gives none."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass

import orjson

__all__ = ["KeyConfig", "DEFAULT_KEY_CONFIG", "service_of", "normalize_symptom", "fingerprint_of_labels"]


@dataclass(frozen=True, slots=True, kw_only=True)
class KeyConfig:
    """Which labels name the service and the symptom, in order of preference (DESIGN.md, correlation semantics)."""

    service_labels: tuple[str, ...] = ("service", "job", "app", "host", "instance")
    symptom_labels: tuple[str, ...] = ("alertname",)
    unknown_service: str = "unknown"


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
