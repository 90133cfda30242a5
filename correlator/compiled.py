"""The optional compiled build of stage 1's engine (mypyc), and the one rule that decides when it is used.

`make compiled` (`correlator.compiled.main(["build"])`) compiles `MODULES` with mypyc into extension modules
beside their sources, plus a stamp holding the digest of every source the build read: `MODULES` and every
package module they import from, directly or through one another (`reads`, found in the sources at build time,
so no list of them is kept by hand).
Python imports an extension module before a `.py` of the same name, so `guard` (run by `correlator/__init__.py`,
before any of them is imported) sends those imports back to the sources, all of them together, whenever:

- no stamp, or a stamp whose digests differ from the sources now (an edit since the build: never run stale code;
  an import added to a compiled or read module edits that module, so the stamp's list of what was read cannot go
  out of date while its digests match);
- `AIOPS_PURE=1` in the environment (the pure-Python engine on purpose: tests, comparisons).

The pure modules are the reference: `pip install .` installs no extension module, a checkout runs them until
someone builds, and `tests/test_compiled_engine.py` checks that both give the same events byte for byte. Why:
the engine is the largest piece of a worker's per-alert CPU that is our own code (benchmarks/RESULTS.md,
issue 19, session 32), and mypyc runs it about 1.3x faster with no change to the source.
"""

from __future__ import annotations

import ast
import hashlib
import importlib.abc
import importlib.machinery
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from importlib.machinery import ModuleSpec
from pathlib import Path
from types import ModuleType

__all__ = ["MODULES", "PURE_ENV", "build", "clean", "ensure", "fresh", "guard", "reads", "status"]

HERE = Path(__file__).resolve().parent
PACKAGE = "correlator"
MODULES = ("engine", "windows", "incidents", "state")
"""Compiled together (one mypyc group: their calls to each other are native calls)."""
GROUP = f"{PACKAGE}._engine_c"
"""The group's shared library (`correlator/_engine_c__mypyc*.so`); each module's extension is a shim into it."""
STAMP = HERE / "_compiled.json"
PURE_ENV = "AIOPS_PURE"
SUFFIX = importlib.machinery.EXTENSION_SUFFIXES[0]


def _source(name: str) -> Path | None:
    """The source of a module of the package by its name inside it (`models`, `stage2.config`), None if none."""
    path = HERE.joinpath(*name.split("."))
    for candidate in (path.with_suffix(".py"), path / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _imports(name: str, path: Path) -> set[str]:
    """The package's modules that one module imports (relative or absolute, `TYPE_CHECKING` ones included:
    mypyc reads their types)."""
    inside = name.split(".")[: None if path.name == "__init__.py" else -1]  # the module's own package
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_bytes())):
        bases: list[str] = []
        if isinstance(node, ast.ImportFrom) and node.level:
            up = inside[: len(inside) - (node.level - 1)] if node.level > 1 else inside
            base = ".".join([*up, *([node.module] if node.module else [])])
            bases = [f"{base}.{a.name}" if base else a.name for a in node.names] + ([base] if base else [])
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith(f"{PACKAGE}."):
            base = str(node.module)[len(PACKAGE) + 1:]
            bases = [f"{base}.{a.name}" for a in node.names] + [base]
        elif isinstance(node, ast.Import):
            bases = [a.name[len(PACKAGE) + 1:] for a in node.names if a.name.startswith(f"{PACKAGE}.")]
        found.update(b for b in bases if _source(b) is not None)
    return found


def reads() -> tuple[str, ...]:
    """The package's modules the compiled modules import from, directly or through one another, sorted: an edit
    of one makes the build stale, as an edit of a compiled module does."""
    seen: set[str] = set()
    todo = list(MODULES)
    while todo:
        name = todo.pop()
        path = _source(name)
        if name in seen or path is None:
            continue
        seen.add(name)
        todo.extend(_imports(name, path))
    return tuple(sorted(seen - set(MODULES)))


def _digest(name: str) -> str:
    path = _source(name)
    if path is None:
        raise OSError(f"{name}: no such module in {PACKAGE}")
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _digests() -> dict[str, str]:
    """What a build stamps: the digest of each compiled module and of each module it reads (`reads`)."""
    return {name: _digest(name) for name in (*MODULES, *reads())}


def _built() -> list[Path]:
    """The extension modules of a build in this checkout (none after `pip install .`)."""
    return [p for p in (HERE / f"{name}{SUFFIX}" for name in MODULES) if p.exists()]


def fresh() -> bool:
    """Whether every module has its extension and the stamp matches every source now."""
    try:
        stamp = json.loads(STAMP.read_text())
        # the stamp names what the build read; those sources unchanged (an added import changes one) is fresh
        same = isinstance(stamp, dict) and set(MODULES) <= set(stamp) and all(
            stamp[name] == _digest(name) for name in stamp)
    except (OSError, ValueError):  # no stamp, or a module it names is gone
        return False
    return bool(same and len(_built()) == len(MODULES))


def status() -> str:
    """`compiled`, or why the pure modules run: `absent`, `off` (AIOPS_PURE=1), `stale` (a source changed)."""
    if not _built():
        return "absent"
    if os.environ.get(PURE_ENV, "") not in ("", "0"):
        return "off"
    return "compiled" if fresh() else "stale"


class _Sources(importlib.abc.MetaPathFinder):
    """Finds the compiled modules' `.py` sources first, so their extension modules are never loaded."""

    def find_spec(self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
                  ) -> ModuleSpec | None:
        package, _, name = fullname.rpartition(".")
        if package != PACKAGE or name not in MODULES:
            return None
        return importlib.util.spec_from_file_location(fullname, HERE / f"{name}.py")


def guard() -> str:
    """Unless the build is fresh and wanted, make the compiled modules import from their sources; the status."""
    why = status()
    if why in ("off", "stale") and not any(isinstance(f, _Sources) for f in sys.meta_path):
        sys.meta_path.insert(0, _Sources())
    return why


_SETUP = f"""
from setuptools import setup
from mypyc.build import mypycify
setup(name="aiops-correlator-engine", packages=[], script_args=["build_ext", "--inplace"],
      ext_modules=mypycify({[f"{PACKAGE}/{n}.py" for n in MODULES]!r}, opt_level="3", group_name={GROUP!r}))
"""
_MYPY_INI = "[mypy]\npython_version = 3.11\nplugins = pydantic.mypy\n"


def build(quiet: bool = True) -> None:
    """Compile `MODULES` in a scratch copy of the package and put the extension modules and the stamp here.

    In a scratch directory so that setuptools reads no project metadata and leaves no build tree in the
    checkout. Files are replaced by rename (a running worker keeps the library it mapped), the stamp last.
    """
    digests = _digests()
    with tempfile.TemporaryDirectory(prefix="aiops-mypyc-") as scratch:
        work = Path(scratch)
        shutil.copytree(HERE, work / PACKAGE, ignore=shutil.ignore_patterns("*.so", "__pycache__", "_compiled.json"))
        (work / "setup.py").write_text(_SETUP)
        (work / "mypy.ini").write_text(_MYPY_INI)
        out = subprocess.run([sys.executable, "setup.py"], cwd=work, capture_output=True, text=True, check=False)
        if out.returncode != 0:
            raise RuntimeError(f"mypyc build failed:\n{out.stdout[-4000:]}\n{out.stderr[-4000:]}")
        if not quiet:
            print(out.stdout[-2000:])
        made = sorted((work / PACKAGE).glob(f"*{SUFFIX}"))
        clean()
        for lib in made:
            tmp = HERE / f".{lib.name}.tmp"
            shutil.copyfile(lib, tmp)
            os.replace(tmp, HERE / lib.name)
    tmp = HERE / ".compiled.json.tmp"
    tmp.write_text(json.dumps(digests, indent=1, sort_keys=True) + "\n")
    os.replace(tmp, STAMP)


def ensure() -> None:
    """Build unless a fresh build is here (what `make compiled` runs)."""
    if not fresh():
        build()


def clean() -> None:
    """Remove the build: the stamp first, so that no moment leaves extension modules with a fresh stamp."""
    STAMP.unlink(missing_ok=True)
    for name in (*MODULES, f"{GROUP.rpartition('.')[2]}__mypyc"):
        (HERE / f"{name}{SUFFIX}").unlink(missing_ok=True)


def main(argv: Sequence[str] | None = None) -> int:
    """`build`, `ensure`, `clean` or `status` (the default)."""
    command = (list(argv if argv is not None else sys.argv[1:]) or ["status"])[0]
    if command == "build":
        build()
    elif command == "ensure":
        ensure()
    elif command == "clean":
        clean()
    elif command != "status":
        print("usage: main([build|ensure|clean|status])", file=sys.stderr)
        return 2
    print(status())
    return 0
