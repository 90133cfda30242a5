"""Every setting as a command-line flag, generated from the one `Settings` object, and its one-line errors.

Each field of `Settings` (and of its nested `topics`) becomes `--kebab-name`, with the field's description,
its default and its environment variable in the help, so `aiops worker --help` is the whole configuration
reference. A flag left out is absent from the namespace (argparse.SUPPRESS), so the environment, then the
config file (`--config FILE`), then the default decide it. Values are validated by `Settings` itself, never
twice: a bad one ends the command with exit code 2 and one line naming the flag and the variable.
"""

from __future__ import annotations

import argparse
import json
import types
from collections.abc import Collection, Iterator, Mapping
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel, SecretStr, ValidationError
from pydantic.fields import FieldInfo
from pydantic_settings import SettingsError as PydanticSettingsError

from correlator.validation import field_path, reason_of
from stream.derived_settings import SettingValueError
from stream.settings import ConfigFileError, Duration, Settings, parse_duration

__all__ = ["ENV_PREFIX", "SettingsError", "add_settings_flags", "env_name", "flag_name", "load_settings"]

ENV_PREFIX = "AIOPS_"
_DEST = "setting:"  # namespace attributes of generated flags: "setting:topics.alerts_raw"
_SPELLING: dict[tuple[str, ...], tuple[str, ...]] = {  # the spellings people expect: `--config FILE`, `--notify FILE`
    ("config_file",): ("--config", "--config-file"), ("notify_file",): ("--notify", "--notify-file")}


class SettingsError(ValueError):
    """A setting has a bad value (from a flag, the environment or the config file): one readable line."""


def flag_name(path: tuple[str, ...]) -> str:
    """`("topics", "alerts_raw")` -> `--topics-alerts-raw`."""
    return "--" + "-".join(part.replace("_", "-") for part in path)


def env_name(path: tuple[str, ...]) -> str:
    """`("topics", "alerts_raw")` -> `AIOPS_TOPICS__ALERTS_RAW` (pydantic-settings' nested delimiter)."""
    return ENV_PREFIX + "__".join(part.upper() for part in path)


def _fields(model: type[BaseModel], prefix: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], FieldInfo]]:
    """(path, field) of every leaf setting; a nested model's fields are described by its docstring's first line."""
    for name, info in model.model_fields.items():
        nested = info.annotation
        if isinstance(nested, type) and issubclass(nested, BaseModel):
            about = (nested.__doc__ or name).strip().splitlines()[0].rstrip(".")
            for path, leaf in _fields(nested, (*prefix, name)):
                if leaf.description is None:
                    leaf = FieldInfo.merge_field_infos(leaf, description=f"{about}: {path[-1]}")
                yield path, leaf
        else:
            yield (*prefix, name), info


def _bare(annotation: Any) -> Any:
    """The annotation without `| None` and without `Annotated` constraints (`PositiveInt | None` -> int)."""
    if get_origin(annotation) in (Union, types.UnionType):
        args = [a for a in get_args(annotation) if a is not type(None)]
        annotation = args[0] if len(args) == 1 else annotation
    if get_origin(annotation) is Annotated:
        return get_args(annotation)[0]
    return annotation


def _is_duration(info: FieldInfo) -> bool:
    """A `Duration` field (`| None` too), or a dict of them (shown and documented as 10m, 30s, ...)."""
    kind = _bare(info.annotation)
    if get_origin(kind) is dict:
        return bool(get_args(kind)[1] == Duration)
    optional = [a for a in get_args(info.annotation) if a is not type(None)]
    metadata = [*info.metadata, *(get_args(optional[0])[1:] if len(optional) == 1 else ())]
    return any(getattr(m, "func", None) is parse_duration for m in metadata)


def _metavar(info: FieldInfo) -> str:
    kind = _bare(info.annotation)
    if get_origin(kind) is Literal:
        return "{" + ",".join(map(str, get_args(kind))) + "}"
    if get_origin(kind) is dict:
        return "JSON"
    if get_origin(kind) in (tuple, frozenset):
        return "A,B,..."
    if _is_duration(info):
        return "DURATION"
    names = {int: "N", float: "NUMBER", Path: "PATH", SecretStr: "SECRET"}
    return names.get(kind, "TEXT")


def _shown(value: Any, info: FieldInfo) -> str:
    if value is None:
        return "unset"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float) and _is_duration(info):
        return f"{value:g}s"
    if isinstance(value, tuple):
        return ",".join(map(str, value))
    if isinstance(value, frozenset):
        return json.dumps(sorted(value))  # JSON: a set may hold an empty name
    if isinstance(value, dict):
        return json.dumps({k: _shown(v, info) for k, v in value.items()}) if _is_duration(info) else json.dumps(value)
    return str(value)


def _default(info: FieldInfo) -> Any:
    return info.default_factory() if info.default_factory is not None else info.default  # type: ignore[call-arg]


def _help(path: tuple[str, ...], info: FieldInfo) -> str:
    text = info.description or path[-1].replace("_", " ")
    return f"{text} (default {_shown(_default(info), info)}, env {env_name(path)})".replace("%", "%%")


def add_settings_flags(parser: argparse.ArgumentParser, *, exclude: Collection[str] = (),
                       groups: Mapping[str, tuple[str, Collection[str]]] | None = None,
                       only: Collection[str] | None = None) -> None:
    """A flag for every setting not in `exclude` (and in `only`, when given: `aiops replay` takes stage 2's);
    `groups` puts named fields under their own heading (title -> (description, field names)), the rest go under
    "settings"."""
    groups = groups or {}
    placed: dict[str, Any] = {}
    for title, (text, names) in groups.items():
        group = parser.add_argument_group(title, text)
        placed.update((name, group) for name in names)
    if parser.usage is None:  # the generated flags would make a usage line of forty
        parser.usage = "%(prog)s [options]"
    rest = parser.add_argument_group(
        "settings", f"Every setting is also an environment variable ({ENV_PREFIX}NAME, named in each help line) and "
        "a key of the --config file; a flag wins over the variable, which wins over the file.")
    for path, info in _fields(Settings):
        if path[0] in exclude or (only is not None and path[0] not in only):
            continue
        group = placed.get(path[0], rest)
        names = _SPELLING.get(path, (flag_name(path),))
        dest = _DEST + ".".join(path)
        if _bare(info.annotation) is bool:
            group.add_argument(*names, dest=dest, action=argparse.BooleanOptionalAction, default=argparse.SUPPRESS,
                               help=_help(path, info))
        else:
            group.add_argument(*names, dest=dest, default=argparse.SUPPRESS, metavar=_metavar(info),
                               help=_help(path, info))


def _flag_values(args: argparse.Namespace) -> dict[str, Any]:
    """The settings given as flags, nested as `Settings` takes them; JSON and lists decoded here."""
    values: dict[str, Any] = {}
    fields = dict(_fields(Settings))
    for dest, value in vars(args).items():
        if not dest.startswith(_DEST):
            continue
        path = tuple(dest[len(_DEST):].split("."))
        kind = get_origin(_bare(fields[path].annotation))
        if kind is dict and isinstance(value, str):
            try:
                value = json.loads(value)
            except ValueError as exc:
                raise SettingsError(f"{flag_name(path)}: not JSON ({exc}): {value!r}") from None
        elif kind is tuple and isinstance(value, str):
            value = tuple(part.strip() for part in value.split(",") if part.strip())
        target = values
        for part in path[:-1]:
            target = target.setdefault(part, {})
        target[path[-1]] = value
    return values


def _where(loc: tuple[Any, ...]) -> str:
    """`window` -> `--window / AIOPS_WINDOW`; nested and keyed paths as far as they name a setting."""
    fields = dict(_fields(Settings))
    path = tuple(str(part) for part in loc)
    for size in range(len(path), 0, -1):
        if path[:size] in fields:
            tail = "".join(f"[{p}]" for p in path[size:])
            return f"{flag_name(path[:size])}{tail} / {env_name(path[:size])}"
    return field_path(loc) or "settings"


def describe(exc: ValidationError) -> str:
    """One line for a ValidationError of Settings: each error's flag, variable, reason and the value given."""
    parts = []
    for error in exc.errors(include_url=False):
        reason = reason_of(error)
        given = error.get("input")
        shown = f" (got {given!r})" if isinstance(given, str | int | float) and repr(given) not in reason else ""
        loc = tuple(error["loc"])
        cause = error.get("ctx", {}).get("error")
        paths = cause.paths if isinstance(cause, SettingValueError) and cause.paths else ((),)
        parts.append(f"{' and '.join(_where(loc + path) for path in paths)}: {reason}{shown}")
    return "; ".join(parts)


def load_settings(args: argparse.Namespace, **extra: Any) -> Settings:
    """Settings from flags (and `extra`, set by the command itself) over env over the config file over defaults.

    Raises `SettingsError` with one line for any bad value, wherever it came from.
    """
    try:
        return Settings.from_args(**{**_flag_values(args), **extra})
    except ValidationError as exc:
        raise SettingsError(describe(exc)) from None
    except ConfigFileError as exc:
        raise SettingsError(str(exc)) from None
    except PydanticSettingsError as exc:  # a variable that is not the JSON its list or table needs
        raise SettingsError(f"{exc} (a list or a table in a variable is JSON, e.g. '[\"a\", \"b\"]')") from None
