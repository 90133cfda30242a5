"""The optional plug-in seam (an LLM-backed classifier, say) and the fallback to the rules when it fails.

Nothing here imports a plug-in unless `TriageConfig.plugin` names one. The fallback is pure: the caller runs
the plug-in however it likes (in a thread, under `asyncio.wait_for(..., config.plugin_timeout_s)`) and hands
`settle` what came back: the plug-in's Classification, the exception it raised, or `PluginTimedOut`. Timing is
the caller's business; `correlator/` never reads the clock.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any, cast

from correlator.triage.classifier import DEFAULT_TRIAGE_CONFIG, Classification, Classifier, RuleClassifier, TriageConfig
from correlator.triage.taxonomy import SEVERITIES

__all__ = ["PluginError", "PluginTimedOut", "load_object", "load_plugin", "settle", "FallbackClassifier", "build_classifier"]


class PluginError(ValueError):
    """A configured plug-in that cannot be loaded: a configuration error, reported at start-up."""


@dataclass(frozen=True, slots=True)
class PluginTimedOut:
    """The caller's record that the plug-in gave no answer within its timeout."""

    after_s: float


def load_object(path: str, method: str, config: object) -> Any:
    """Import `package.module:factory` and call `factory(config)`; its result must have a callable `method`.

    The one plug-in seam: the triage classifier (`classify`) and the weekly summary's narrator (`narrate`).
    """
    module_name, _, attr = path.partition(":")
    if not module_name or not attr:
        raise PluginError(f"plugin {path!r}: expected 'package.module:factory'")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise PluginError(f"plugin {path!r}: cannot import {module_name}: {exc}") from exc
    factory = getattr(module, attr, None)
    if not callable(factory):
        raise PluginError(f"plugin {path!r}: {attr} is not callable")
    plugin = factory(config)
    if not callable(getattr(plugin, method, None)):
        raise PluginError(f"plugin {path!r}: the factory's result has no {method}(...)")
    return plugin


def load_plugin(path: str, config: TriageConfig) -> Classifier:
    """Import `package.module:factory` and call `factory(config)`; it must return something with `classify`."""
    return cast(Classifier, load_object(path, "classify", config))


def _problem(outcome: object, taxonomy: Sequence[str]) -> str | None:
    """Why a plug-in outcome cannot be used as it is, or None when it can."""
    if isinstance(outcome, PluginTimedOut):
        return f"plugin timed out after {outcome.after_s:g}s"
    if isinstance(outcome, BaseException):
        return f"plugin raised {type(outcome).__name__}: {outcome}"
    if not isinstance(outcome, Classification):
        return f"plugin returned a {type(outcome).__name__}, not a Classification"
    if outcome.taxonomy_code not in taxonomy:
        return f"plugin returned {outcome.taxonomy_code!r}, outside the taxonomy"
    if outcome.severity not in SEVERITIES or not 0.0 <= outcome.confidence <= 1.0:
        return f"plugin returned severity {outcome.severity!r} / confidence {outcome.confidence!r}"
    return None


def settle(text: str, outcome: object, fallback: Classifier, taxonomy: Sequence[str]) -> Classification:
    """The plug-in's answer when it is a valid Classification; otherwise the fallback's, saying why."""
    problem = _problem(outcome, taxonomy)
    if problem is None:
        return cast(Classification, outcome)
    answer = fallback.classify(text)
    one_line = " ".join(problem.split())
    return replace(answer, reason=f"{answer.reason} [fallback: {one_line}]", classifier=f"{answer.classifier}:fallback")


class FallbackClassifier:
    """A plug-in whose exceptions and invalid answers fall back to the rules (a timeout is the caller's to add)."""

    def __init__(self, plugin: Classifier, fallback: Classifier, taxonomy: Sequence[str]) -> None:
        self.plugin = plugin
        self.fallback = fallback
        self.taxonomy = tuple(taxonomy)

    def classify(self, text: str) -> Classification:
        """Ask the plug-in; on an exception or a bad answer, the fallback answers."""
        outcome: object
        try:
            outcome = self.plugin.classify(text)
        except Exception as exc:  # noqa: BLE001 - any plug-in failure means: use the rules
            outcome = exc
        return settle(text, outcome, self.fallback, self.taxonomy)


def build_classifier(config: TriageConfig = DEFAULT_TRIAGE_CONFIG) -> Classifier:
    """The rule classifier, or the configured plug-in wrapped with the rules as its fallback."""
    rules = RuleClassifier(config)
    if config.plugin is None:
        return rules
    return FallbackClassifier(load_plugin(config.plugin, config), rules, config.taxonomy)
