"""The one error every source adapter raises: which field is wrong and why, so a 400 or a dead letter can say so."""

from __future__ import annotations

__all__ = ["SourceError"]


class SourceError(ValueError):
    """A body that cannot become alerts. `field` is a dotted path (`alerts[3].startsAt`), or `body` for the whole."""

    def __init__(self, field: str, reason: str, *, source: str = "") -> None:
        self.field = field
        self.reason = reason
        self.source = source
        prefix = f"{source}: " if source else ""
        super().__init__(f"{prefix}{field}: {reason}")

    def as_dict(self) -> dict[str, str]:
        """JSON-ready form for an HTTP 400 body or a dead-letter record."""
        return {"source": self.source, "field": self.field, "reason": self.reason}
