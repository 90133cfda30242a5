"""Two sets of py-spy raw profiles side by side: inclusive samples per function, as us per alert, and the difference.

Reads the files `benchmarks/ablation_probe.py --pyspy DIR` writes (`<setting>-<pid>.txt`, py-spy `--format raw
--threads`, 200 Hz), sums each setting's runs, and prints, for the functions whose inclusive time differs most
between two settings, the us per alert of each (samples / rate / alerts / runs). Inclusive: a sample counts once for
every distinct function on its stack, so a caller shows what it and its callees took.

    .venv/bin/python benchmarks/pyspy_diff.py DIR all stage2_off --alerts 100000 [--top 40] [--thread main]
"""

from __future__ import annotations

import argparse
import re
import sys
from collections import Counter
from pathlib import Path

FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^():]*)(?::\d+)?\)$")


def frames(stack: str) -> list[str]:
    """The stack's frames as `function (file)`, outermost first, line numbers dropped (one entry per function)."""
    out = []
    for frame in stack.split(";"):
        m = FRAME.match(frame.strip())
        if m:
            path = m["file"]
            for cut in ("site-packages/", "wt-fast23/", "aiops-ab-"):
                if cut in path:
                    path = path.split(cut, 1)[1]
            out.append(f"{m['func']} ({path})")
        else:
            out.append(frame.strip())
    return out


def load(path: Path, thread: str | None) -> tuple[Counter[str], int]:
    """Inclusive samples per function of one profile, and its total samples (of `thread`: `main` or `other`)."""
    incl: Counter[str] = Counter()
    total = 0
    pid = path.stem.rsplit("-", 1)[1]
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        fs = frames(stack)
        if thread is not None and fs:
            m = re.search(r"\((0x[0-9a-f]+|\d+)\)", fs[0])
            is_main = fs[0].startswith("thread") and "MainThread" in fs[0] or (m is not None and m[1] == pid)
            if (thread == "main") != is_main:
                continue
        n = int(count)
        total += n
        for f in set(fs[1:] if fs and fs[0].startswith(("thread", "process")) else fs):
            incl[f] += n
    return incl, total


def main(argv: list[str] | None = None) -> int:
    """Print the two settings' inclusive us per alert for the functions that differ most."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("dir", type=Path)
    p.add_argument("a")
    p.add_argument("b")
    p.add_argument("--alerts", type=int, default=100_000)
    p.add_argument("--rate", type=float, default=200.0)
    p.add_argument("--top", type=int, default=40)
    p.add_argument("--thread", choices=("main", "other"))
    p.add_argument("--grep", default="", help="only functions whose name contains this")
    args = p.parse_args(argv)
    sides = {}
    for name in (args.a, args.b):
        files = sorted(args.dir.glob(f"{name}-*.txt"))
        incl: Counter[str] = Counter()
        total = 0
        for f in files:
            c, t = load(f, args.thread)
            incl.update(c)
            total += t
        scale = 1e6 / args.rate / args.alerts / max(1, len(files))
        sides[name] = ({k: v * scale for k, v in incl.items()}, total * scale, len(files))
    (ia, ta, na), (ib, tb, nb) = sides[args.a], sides[args.b]
    print(f"total us/alert: {args.a} {ta:.2f} ({na} runs), {args.b} {tb:.2f} ({nb} runs)")
    keys = [k for k in set(ia) | set(ib) if args.grep in k]
    keys.sort(key=lambda k: -abs(ia.get(k, 0.0) - ib.get(k, 0.0)))
    for k in keys[:args.top]:
        print(f"{ia.get(k, 0.0):8.2f} {ib.get(k, 0.0):8.2f} {ia.get(k, 0.0) - ib.get(k, 0.0):+8.2f}  {k[:150]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
