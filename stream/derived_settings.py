"""Settings models derived from the engines' frozen config dataclasses, field by field.

`GroupingConfig` (stage 2's rules) and `NotifyPolicy` (the notify fold's switches) are plain dataclasses inside
`correlator/`; a branch that adds a rule appends a field there. `derive` turns such a dataclass into a pydantic
model with one field per dataclass field (same name, type and default; a float ending in `_s` is a `Duration`,
so "2m" works), which `Settings` nests: every field is then an `AIOPS_<NESTED>__<FIELD>` variable, a
`--<nested>-<field>` flag and a key of the config file, with no edit here when a field is added. The dataclass's
own `__post_init__` stays the one place of its checks: the model builds the dataclass once when it is validated,
so a bad value stops the start with the dataclass's own message.
"""

from __future__ import annotations

import ast
import dataclasses
import inspect
import json
import re
import sys
from collections.abc import Collection
from pathlib import Path
from typing import Annotated, Any, ClassVar, get_origin, get_type_hints

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, create_model, model_validator
from pydantic_settings import NoDecode

__all__ = ["DerivedSettings", "SettingValueError", "derive", "field_notes", "split_names"]


class SettingValueError(ValueError):
    """A value refused by a check across settings; `paths` names the settings at fault (relative to the model
    that raised it), so the error line can name their flags and variables (`stream.flags.describe`)."""

    def __init__(self, message: str, *paths: tuple[str, ...]) -> None:
        super().__init__(message)
        self.paths = paths


def split_names(value: Any) -> Any:
    """A list of names as text, `a,b` or a JSON array (an environment variable, a flag), to a list."""
    if not isinstance(value, str):
        return value
    text = value.strip()
    if text.startswith("["):
        return json.loads(text)
    return [part.strip() for part in text.split(",") if part.strip()]


class DerivedSettings(BaseModel):
    """Base of the derived models: frozen, unknown keys refused, validated by building the dataclass."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    target: ClassVar[type[Any]] = object
    """The dataclass this model's fields come from."""
    fixed: ClassVar[frozenset[str]] = frozenset()
    """Its fields left out of the model: set from other settings by whoever builds the dataclass."""

    def values(self) -> dict[str, Any]:
        """The model's fields as keyword arguments of `target`."""
        return {name: getattr(self, name) for name in type(self).model_fields}

    @model_validator(mode="after")
    def _target_accepts(self) -> DerivedSettings:
        try:
            self.target(**self.values())
        except (TypeError, ValueError) as exc:  # the dataclass's own check, which names the field in its message
            named = [n for n in type(self).model_fields if re.search(rf"\b{n}\b", str(exc))]
            given = [n for n in named if n in self.model_fields_set]  # of those it names, the ones given
            raise SettingValueError(str(exc), *((n,) for n in given or named)) from None
        return self


def derive(target: type[Any], *, doc: str, seconds: Any, fixed: Collection[str] = ()) -> type[DerivedSettings]:
    """A `DerivedSettings` model of every field of the dataclass `target` but those in `fixed`.

    `seconds` is the type of a float field named `*_s` (the settings' `Duration`); `doc`'s first line heads each
    flag's help where a field has no note of its own (`field_notes`).
    """
    hints = get_type_hints(target)
    notes = field_notes(target)
    fields: dict[str, Any] = {}
    for f in dataclasses.fields(target):
        if f.name in fixed:
            continue
        if f.default is not dataclasses.MISSING:
            default = f.default
        elif f.default_factory is not dataclasses.MISSING:
            default = f.default_factory()
        else:
            raise TypeError(f"{target.__name__}.{f.name} has no default: a setting needs one")
        kind = hints[f.name]
        if kind is float and f.name.endswith("_s"):
            kind = seconds
        elif get_origin(kind) in (tuple, frozenset):  # `a,b` as well as JSON, from a variable or a flag
            kind = Annotated[kind, NoDecode, BeforeValidator(split_names)]
        fields[f.name] = (kind, Field(default=default, description=notes.get(f.name)))
    model = create_model(f"{target.__name__}Settings", __base__=DerivedSettings, __doc__=doc, **fields)
    model.target = target
    model.fixed = frozenset(fixed)
    return model


_NOTE = re.compile(r"^(\w+(?: / \w+)*): (.*)$")


def field_notes(target: type[Any]) -> dict[str, str]:
    """Each field's first sentence from the class docstring's `name: text` (or `a / b: text`) entries, or from
    the string literal under the field (an attribute docstring); fields with neither are left out."""
    notes: dict[str, str] = {}
    lines = inspect.cleandoc(target.__doc__ or "").splitlines()
    for i, line in enumerate(lines):
        match = _NOTE.match(line)
        if match is None:
            continue
        text = [match.group(2)]
        for more in lines[i + 1:]:
            if not more.startswith("    "):
                break
            text.append(more.strip())
        for name in match.group(1).split(" / "):
            notes[name] = _first_sentence(" ".join(text))
    try:  # the class's own lines, parsed alone (inspect.getsource, or parsing the whole module, is slower)
        source = Path(str(sys.modules[target.__module__].__file__)).read_text()
        start = re.search(rf"^class {target.__name__}\b.*$", source, re.MULTILINE)
        end = re.compile(r"^\S", re.MULTILINE).search(source, start.end() + 1) if start else None
        tree = ast.parse(source[start.start(): end.start() if end else None]) if start else None
    except (KeyError, OSError, TypeError, SyntaxError):
        tree = None
    if tree is None:
        return notes
    body = tree.body[0].body if tree.body and isinstance(tree.body[0], ast.ClassDef) else []
    for field, after in zip(body, body[1:], strict=False):
        if (isinstance(field, ast.AnnAssign) and isinstance(field.target, ast.Name) and isinstance(after, ast.Expr)
                and isinstance(after.value, ast.Constant) and isinstance(after.value.value, str)):
            notes.setdefault(field.target.id, _first_sentence(" ".join(after.value.value.split())))
    return notes


def _first_sentence(text: str) -> str:
    """Up to the first full stop followed by a space (numbers like 0.002 and `e.g.` kept whole)."""
    match = re.search(r"(?<!e\.g)(?<!i\.e)\.\s", text)
    return text[: match.start() + 1] if match else text
