"""The one error every source adapter raises: which field is wrong and why, so a 400 or a dead letter can say so."""

from __future__ import annotations

__all__ = ["SourceError", "REASON_CATEGORIES"]

REASON_CATEGORIES = (
    ("empty body", "empty_body"),
    ("body of ", "too_large"),
    ("malformed JSON", "malformed_json"),
    ("missing required field", "missing_field"),
    ("wrong type", "wrong_type"),
    ("unknown Alertmanager webhook version", "unknown_version"),
    ("unknown source", "unknown_source"),
)
"""Reason text prefix -> a bounded category, for metric labels (a field path is not a label value)."""


class SourceError(ValueError):
    """A body that cannot become alerts. `field` is a dotted path (`alerts[3].startsAt`), or `body` for the whole."""

    def __init__(self, field: str, reason: str, *, source: str = "") -> None:
        self.field = field
        self.reason = reason
        self.source = source
        prefix = f"{source}: " if source else ""
        super().__init__(f"{prefix}{field}: {reason}")

    @property
    def category(self) -> str:
        """A bounded name for the kind of refusal: `malformed_json`, `missing_field`, ..., else `invalid_value`."""
        for prefix, name in REASON_CATEGORIES:
            if self.reason.startswith(prefix):
                return name
        return "invalid_value"

    def as_dict(self) -> dict[str, str]:
        """JSON-ready form for an HTTP 400 body or a dead-letter record."""
        return {"source": self.source, "field": self.field, "reason": self.reason}
