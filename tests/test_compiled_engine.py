"""The compiled engine (correlator/compiled.py, mypyc) against the pure modules: the same events, byte for byte.

Each side runs in its own process (`AIOPS_PURE=1` for the pure one), correlates the same inputs and prints a
digest of everything the engine hands out: every event as the correlate agent encodes it, the counters, each
key's state as the changelog stores it, the alert-to-incident assignments, and the replay reports (stage 2
included) of the lab storm and rca-micross. Skipped only when no build is here and not under CI (`make test`
builds it first; `make compiled` does it alone).
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from .paths import LAB_STORM, MICROSS, ROOT

UNDER_CI = os.environ.get("CI", "").strip().lower() in {"true", "1", "yes"}


def _run(code: str, pure: bool, cwd: Path = ROOT) -> dict[str, object]:
    env = {k: v for k, v in os.environ.items() if k != "AIOPS_PURE"}
    if pure:
        env["AIOPS_PURE"] = "1"
    out = subprocess.run([sys.executable, "-c", code], cwd=cwd, env=env, capture_output=True, text=True,
                         check=True, timeout=240)
    result: dict[str, object] = json.loads(out.stdout.splitlines()[-1])
    return result


def _need_build() -> None:
    from correlator import compiled

    if not compiled.fresh():  # AIOPS_PURE in this environment does not matter: the children set their own
        if UNDER_CI:
            pytest.fail("no fresh compiled engine under CI: `make test` builds it first")
        pytest.skip("no fresh compiled engine here: `make compiled`")


def digest() -> dict[str, object]:
    """Correlate the inputs in this process; what the engine gave, as a digest (run by the test in a child)."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from pipeline_throughput import storm_records

    import correlator.engine
    from correlator.compiled import status
    from correlator.engine import Correlator
    from correlator.eventtime import TimeGuard
    from correlator.replay import replay
    from correlator.sources import normalize
    from correlator.stage2 import GroupingConfig
    from stream.commands.replay import read_alerts
    from stream.incident_records import encode_incident_event
    from stream.state import encode_state

    h = hashlib.sha256()
    events = 0
    bodies, _ = storm_records(200, 100, seed=11)
    guard = TimeGuard(horizon_s=None)
    records = [r for body in bodies for r in normalize("generic", body, 2e9, guard).records]
    late = list(records)
    rng = random.Random(5)
    for i in range(0, len(late), 700):  # out of order within and beyond the allowed lateness: the late path
        chunk = late[i:i + 700]
        rng.shuffle(chunk)
        late[i:i + 700] = chunk
    for stream in (records, late):
        engine = Correlator(record_assignments=True)
        out = []
        for i in range(0, len(stream), 100):
            out += engine.ingest(stream[i:i + 100], arrival=2e9)
            if i % 5000 == 0:
                out += engine.flush_idle()
        out += engine.advance(engine.watermark + 600)
        for _, st in engine.store.items():
            h.update(encode_state(st))
        out += engine.finish()
        events += len(out)
        for ev in out:
            h.update(encode_incident_event(ev))
        h.update(repr((engine.counters.as_dict(), engine.state_size(), sorted((engine.assignments or {}).items()),
                       engine.watermark)).encode())
    for path in (LAB_STORM, MICROSS / "alerts.ndjson"):
        if path.exists():
            report = replay(read_alerts(path), grouping=GroupingConfig())
            h.update(repr(report).encode())
    return {"status": status(), "engine": correlator.engine.__file__, "events": events, "sha": h.hexdigest()}


CHILD = "import json, tests.test_compiled_engine as t; print(json.dumps(t.digest()))"


def test_compiled_and_pure_engines_give_identical_events() -> None:
    _need_build()
    compiled, pure = _run(CHILD, pure=False), _run(CHILD, pure=True)
    assert compiled["status"] == "compiled" and not str(compiled["engine"]).endswith(".py")
    assert pure["status"] == "off" and str(pure["engine"]).endswith("engine.py")
    assert int(str(pure["events"])) > 10_000
    assert compiled["events"] == pure["events"]
    assert compiled["sha"] == pure["sha"]


def test_a_source_edited_after_the_build_runs_pure(tmp_path: Path) -> None:
    """An edit of a compiled module, or of one it reads, makes the whole build stale: all of it runs pure."""
    _need_build()
    code = ("import correlator.compiled as c, correlator.engine as e, correlator.windows as w; "
            "import json; print(json.dumps({'status': c.status(), 'engine': e.__file__, 'windows': w.__file__}))")
    for edited in ("windows.py", "models.py"):
        copy = tmp_path / edited.removesuffix(".py")
        shutil.copytree(ROOT / "correlator", copy / "correlator")
        fresh = _run(code, pure=False, cwd=copy)
        assert fresh["status"] == "compiled" and not str(fresh["engine"]).endswith(".py")
        with (copy / "correlator" / edited).open("a") as f:
            f.write("\n# edited after the build\n")
        stale = _run(code, pure=False, cwd=copy)
        assert stale["status"] == "stale"
        assert str(stale["engine"]).endswith("engine.py") and str(stale["windows"]).endswith("windows.py")


LOADED = ("import json, sys, correlator, correlator.compiled as c; before = set(sys.modules); "
          "[__import__(f'correlator.{m}') for m in c.MODULES]; "
          "print(json.dumps({'loaded': sorted(m.removeprefix('correlator.') for m in set(sys.modules) - before "
          "if m.startswith('correlator.')), 'reads': c.reads(), 'modules': c.MODULES}))")


def _names(value: object) -> set[str]:
    assert isinstance(value, list)
    return {str(name) for name in value}


def test_the_build_stamps_every_module_the_engine_imports() -> None:
    """What importing the compiled modules loads of the package (pure, in a fresh process) is in `reads`, so an
    edit of any of it makes a build stale; no list of them is kept by hand."""
    seen = _run(LOADED, pure=True)
    loaded = _names(seen["loaded"]) - _names(seen["modules"])
    assert loaded and loaded <= _names(seen["reads"]), seen


def test_an_import_added_to_a_compiled_module_is_stamped(tmp_path: Path) -> None:
    """An import added to a compiled module (or to one it reads) adds that module to what a build stamps."""
    shutil.copytree(ROOT / "correlator", tmp_path / "correlator", ignore=shutil.ignore_patterns("*.so", "_compiled.json"))
    before = _run(LOADED, pure=True, cwd=tmp_path)
    assert not {"validation", "stage2.config"} & _names(before["reads"])
    with (tmp_path / "correlator" / "windows.py").open("a") as f:
        f.write("\nfrom .validation import field_path  # noqa: E402\n")
    with (tmp_path / "correlator" / "keys.py").open("a") as f:  # a module it reads, through another package
        f.write("\nfrom correlator.stage2 import config as _config  # noqa: E402\n")
    after = _run(LOADED, pure=True, cwd=tmp_path)
    assert {"validation", "stage2.config", "stage2"} <= _names(after["reads"])
    assert _names(after["loaded"]) - _names(after["modules"]) <= _names(after["reads"])
