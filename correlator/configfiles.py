"""Files a person writes (the topology, the notify routes): JSON or YAML text in, one readable line on error.

An unknown key is the likeliest mistake and explains the errors it causes (`traget` makes `target` missing), so
`file_error_line` reports it first, with the keys known at that place.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from typing import Any

import orjson
from pydantic import ValidationError

from correlator.validation import first_error

__all__ = ["file_error_line", "load_document"]


def file_error_line(exc: ValidationError, what: str, known_keys: Callable[[tuple[int | str, ...]], Sequence[str]]
                    ) -> str:
    """`field.path: reason` of the first error, an unknown key first (named with `known_keys(loc)` there)."""
    typos = [e for e in exc.errors(include_url=False) if e["type"] == "extra_forbidden"]
    if typos:
        exc = ValidationError.from_exception_data(exc.title, [
            {"type": "extra_forbidden", "loc": typos[0]["loc"], "input": typos[0]["input"]}])
    error = first_error(exc)  # the one formatter (correlator/validation.py): the paths every source's errors use
    if typos:
        return f"{error.field}: {error.reason} (known here: {', '.join(known_keys(typos[0]['loc']))})"
    return f"{error.field}: {error.reason}"


def load_document(text: str | bytes, fmt: str | None) -> Any:
    """The parsed JSON or YAML text (`fmt` "json" or "yaml"; guessed from the first character when None).

    Raises ValueError with one line (`malformed JSON: ...`, `malformed YAML: ...`, `unknown ... format`).
    """
    raw = text.encode() if isinstance(text, str) else text
    if fmt is None:
        fmt = "json" if raw.lstrip()[:1] in (b"{", b"[") else "yaml"
    if fmt == "json":
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise ValueError(f"malformed JSON: {exc}") from None
    if fmt != "yaml":
        raise ValueError(f"unknown format {fmt!r} (json or yaml)")
    # imported only when YAML is given: the JSON path needs nothing beyond orjson
    yaml: Any = importlib.import_module("yaml")
    try:
        return yaml.safe_load(raw)
    except yaml.YAMLError as exc:
        raise ValueError(f"malformed YAML: {exc}".splitlines()[0]) from None
