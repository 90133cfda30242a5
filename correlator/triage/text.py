"""Text folding and phrase patterns: what a rule's pattern string means, and how it is matched.

Text is folded once: alert names split at camelCase ("InterfaceDown" -> "interface down"), Unicode
decomposed and combining marks dropped (so ā->a, č->c, ē->e, ģ->g, ī->i, ķ->k, ļ->l, ņ->n, š->s, ū->u,
ž->z), lower-cased, apostrophes removed ("can't" -> "cant"), and every other non-alphanumeric run turned
into one space. Patterns are written in folded form:

- `link down`   consecutive words;
- `flap*`       a stem: the word starts with `flap` (Latvian inflections: `pieslegum*` matches pieslēgums,
                pieslēguma, pieslēgumu, ...);
- `disk .. full` a gap of up to three words between the two sides.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable

__all__ = ["fold", "compile_patterns"]

# Only identifier-shaped words (two or more capitalised humps: "UPSOnBattery", "DiskSpaceLow") are split, so
# "DDoS", "PCs" and "iPhone" stay whole; inside them a plural acronym keeps its "s" ("VMsDown" -> "VMs Down").
_IDENTIFIER = re.compile(r"(?<![A-Za-z])[a-z]*(?:[A-Z]+[a-z]+){2,}(?![A-Za-z])")
_CAMEL = re.compile(r"(?<=[a-z])(?=[A-Z])|(?<=[A-Z])(?=[A-Z](?!s(?![a-z]))[a-z])")
_APOSTROPHES = re.compile(r"['’`´]")
_NON_WORD = re.compile(r"[^a-z0-9]+")
_GAP = "(?: [a-z0-9]+){0,3}"
_PATTERN_TOKEN = re.compile(r"^(?:\.\.|[a-z0-9]+\*?)$")


def fold(text: str) -> str:
    """Diacritics-insensitive, case-insensitive form of `text`: words separated by single spaces."""
    split = _IDENTIFIER.sub(lambda m: _CAMEL.sub(" ", m.group(0)), text)
    decomposed = unicodedata.normalize("NFKD", split)
    stripped = "".join(ch for ch in decomposed if not unicodedata.combining(ch)).lower()
    return _NON_WORD.sub(" ", _APOSTROPHES.sub("", stripped)).strip()


def _token_regex(token: str) -> str:
    if token.endswith("*"):
        return re.escape(token[:-1]) + "[a-z0-9]*"
    return re.escape(token)


def _pattern_regex(pattern: str) -> str:
    tokens = pattern.split()
    if not tokens or tokens[0] == ".." or tokens[-1] == "..":
        raise ValueError(f"pattern {pattern!r}: empty, or a gap at an end")
    parts: list[str] = []
    for token in tokens:
        if not _PATTERN_TOKEN.match(token):
            raise ValueError(f"pattern {pattern!r}: {token!r} is not a folded word, a stem* or ..")
        if token == "..":
            parts.append(_GAP)
        else:
            parts.append((" " if parts else "") + _token_regex(token))
    return "".join(parts)


def compile_patterns(patterns: Iterable[str]) -> re.Pattern[str]:
    """One regex matching any of `patterns` as whole words in folded text; raises ValueError on a bad pattern."""
    alternatives = [_pattern_regex(p) for p in patterns]
    if not alternatives:
        raise ValueError("a rule needs at least one pattern")
    return re.compile(r"(?<![a-z0-9])(?:" + "|".join(alternatives) + r")(?![a-z0-9])")
