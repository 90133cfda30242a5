"""Pydantic validation errors as field problems: the one formatter every edge uses.

Ingest 400s, dead-letter reasons, review API errors, the topology file and settings all name a problem the same
way: a field path in the sender's own spelling (`alerts[3].startsAt`, `[2].created_at`, `body` for the whole)
and a reason a person can act on (`missing required field`, `wrong type: ...`, `invalid value: ...`). The
reason's first words are what `SourceError.category` turns into a bounded metric label.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from pydantic import ValidationError
from pydantic_core import ErrorDetails

__all__ = ["FieldError", "field_errors", "field_path", "first_error", "json_type", "reason_of"]


@dataclass(frozen=True, slots=True)
class FieldError:
    """One problem with a document: the field path (`body` for the whole) and why."""

    field: str
    reason: str

    def as_dict(self) -> dict[str, str]:
        """The JSON form used in every error answer's `errors` list."""
        return {"field": self.field, "reason": self.reason}


def json_type(value: object) -> str:
    """The JSON name of a parsed value's type, for 'wrong type' messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"


def field_path(loc: Sequence[int | str], where: str = "") -> str:
    """A pydantic location as a path: list indexes in brackets, keys dotted (`alerts[3].startsAt`).

    `where` is the place of the validated document inside a larger one (`[2]`, `line 7`), prefixed; an empty
    result means the whole document and is the caller's to name (`body`).
    """
    path = where
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path


def reason_of(error: ErrorDetails) -> str:
    """The reason text of one pydantic error, worded alike for every edge."""
    kind = error["type"]
    if kind == "missing":
        return "missing required field"
    if kind == "extra_forbidden":
        return "unknown key"
    if kind.endswith("_type"):
        return f"wrong type: {error['msg']}, got {json_type(error.get('input'))}"
    if kind == "value_error":  # our own validators' ValueError: its text is the whole reason
        return str(error.get("ctx", {}).get("error", error["msg"]))
    return f"invalid value: {error['msg']}"


def field_errors(exc: ValidationError, where: str = "", whole: str = "body") -> list[FieldError]:
    """Every error of `exc` as a `FieldError`, paths prefixed by `where`; `whole` names an error of the whole."""
    return [FieldError(field_path(e["loc"], where) or whole, reason_of(e)) for e in exc.errors(include_url=False)]


def first_error(exc: ValidationError, where: str = "", whole: str = "body") -> FieldError:
    """The first error of `exc` (what a one-line refusal or a dead-letter reason names)."""
    return field_errors(exc, where, whole)[0]
