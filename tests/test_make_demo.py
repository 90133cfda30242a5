"""`make demo` as a person runs it: the install step (forced, into the venv running the tests) and the demo print
nothing from make, pip, setuptools or Faust; the first line on the screen is the demo's own.

A fresh clone also creates the venv and installs every dependency (a minute or more); this test forces the
recipe that does the install (`-B`) but keeps the venv, so it takes seconds and still runs pip exactly as a
first run does, under this machine's pip configuration (which warns about index folders that do not exist).
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from .paths import ROOT

# What others print when they are not told to be quiet: make echoing a recipe, pip, setuptools, Faust.
FOREIGN = re.compile(r"\bpip\b|WARNING|Location '|setuptools|[Ee]ditable|[Ff]aust|^\S*python\S* -m |\.venv/bin/",
                     re.MULTILINE)


@pytest.mark.integration
def test_make_demo_prints_only_the_demos_own_lines() -> None:
    venv = Path(sys.prefix)
    done = subprocess.run(["make", "-B", "--no-print-directory", "demo", f"VENV={venv}"], cwd=ROOT,
                          stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=240)
    out = done.stdout.decode(errors="replace")
    assert done.returncode == 0, out
    lines = out.splitlines()
    assert lines[0].startswith("broker kafka://") and "starting a worker" in lines[0], out
    assert lines[1].startswith("opened "), out
    assert lines[-1] == "live pipeline matches the offline replay", out
    assert not FOREIGN.findall(out), FOREIGN.findall(out)
