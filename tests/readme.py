"""The README's runnable parts, read from README.md itself, so the tests check what a person is told to do."""

from __future__ import annotations

import re
from typing import Any

import yaml

from .paths import ROOT

README = ROOT / "README.md"
ALERTMANAGER_SECTION = "Use it with your Alertmanager"


def section(title: str) -> str:
    """The text of the README section `## title`, up to the next `## ` heading."""
    text = README.read_text()
    match = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## |\Z)", text, re.MULTILINE | re.DOTALL)
    if match is None:
        raise AssertionError(f"README has no section '## {title}'")
    return match.group(1)


def code_blocks(text: str, lang: str = "") -> list[str]:
    """Fenced code blocks of `text` (indented ones too, dedented), those tagged `lang` or, with "", untagged."""
    blocks = []
    for match in re.finditer(r"^( *)```(\w*)\n(.*?)^\1```", text, re.MULTILINE | re.DOTALL):
        indent, tag, body = match.groups()
        if tag == lang:
            blocks.append("".join(line[len(indent):] + "\n" for line in body.splitlines()))
    return blocks


def alertmanager_config() -> dict[str, Any]:
    """The route and receivers the README tells a person to paste into alertmanager.yml."""
    (block,) = code_blocks(section(ALERTMANAGER_SECTION), "yaml")
    config: dict[str, Any] = yaml.safe_load(block)
    return config


def start_command() -> list[str]:
    """The one command the README's Alertmanager section starts the correlator with, as argv."""
    (block,) = code_blocks(section(ALERTMANAGER_SECTION), "sh")
    (line,) = [ln for ln in block.splitlines() if ln.strip()]
    return line.split()


def sample_incident_lines() -> list[str]:
    """What the README says `aiops tail incidents` prints for the sample outage (the lines after the command)."""
    (block,) = code_blocks(section(ALERTMANAGER_SECTION), "")
    lines = block.strip().splitlines()
    assert lines[0].startswith("$ ") and lines[0].endswith("aiops tail incidents"), lines[0]
    return lines[1:]
