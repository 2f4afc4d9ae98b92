"""Wall time and peak memory of `smallcomp validate FILE`, one process per call, beside the bare
interpreter's start (`python -c pass`) as the floor: validation must stay cheap enough to run on
every save and in CI, so it may not load the heavy libraries the ops run on.

    python benchmarks/validate_speed.py [--repeats 3] [FILE ...]

Without FILEs: every shipped recipe and track and a few malformed files. Each row is the median
of the repeats; rows over the budget (1 s, 200 MB) are marked. CPU seconds (user + system) are
shown beside wall seconds: on a shared machine they say what the call costs when wall time is
mostly waiting for a core. Python started with PYTHONDONTWRITEBYTECODE compiles every module
from source on every call; the header says when it is set.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
MALFORMED = ("recipe_unknown_op", "recipe_param_range", "track_unknown_task")
BUDGET_S, BUDGET_MB = 1.0, 200.0


def measure(argv: list[str]) -> tuple[int, float, float, float]:
    """(exit code, wall s, CPU s, peak RSS MB) of one child process, its own rusage only."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(argv, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)  # already reaped: keep Popen from waiting
    cpu = usage.ru_utime + usage.ru_stime
    return proc.returncode, wall, cpu, usage.ru_maxrss / 1024  # ru_maxrss is in KiB on Linux


def median_of(argv: list[str], repeats: int) -> tuple[int, float, float, float]:
    runs = [measure(argv) for _ in range(repeats)]
    return (runs[-1][0], *(statistics.median(r[i] for r in runs) for i in (1, 2, 3)))


def default_files() -> list[Path]:
    recipes = sorted((REPO / "recipes").rglob("*.yaml"))
    tracks = sorted((REPO / "tracks").glob("*.yaml"))
    bad = [REPO / "tests" / "malformed" / f"{name}.yaml" for name in MALFORMED]
    return recipes + tracks + bad


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("files", nargs="*", type=Path)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    files = args.files or default_files()
    rows = [("(floor) python -c pass", median_of([sys.executable, "-c", "pass"], args.repeats))]
    for f in files:
        argv = [sys.executable, "-m", "benchmark.cli", "validate", str(f)]
        rows.append((str(f.resolve().relative_to(REPO)), median_of(argv, args.repeats)))
    width = max(len(name) for name, _ in rows)
    nocache = (
        " (PYTHONDONTWRITEBYTECODE is set)" if os.environ.get("PYTHONDONTWRITEBYTECODE") else ""
    )
    print(f"median of {args.repeats} calls each{nocache}")
    print(f"{'file':<{width}}  exit  wall s  cpu s  peak MB")
    for name, (code, wall, cpu, mb) in rows:
        over = " over" if wall > BUDGET_S or mb > BUDGET_MB else ""
        print(f"{name:<{width}}  {code:>4}  {wall:>6.2f}  {cpu:>5.2f}  {mb:>7.0f}{over}")
    walls, cpus, mbs = zip(*((r[1], r[2], r[3]) for _, r in rows[1:]), strict=True)
    print(
        f"validate: wall median {statistics.median(walls):.2f} s, max {max(walls):.2f} s; "
        f"cpu median {statistics.median(cpus):.2f} s; peak max {max(mbs):.0f} MB "
        f"(budget {BUDGET_S:g} s, {BUDGET_MB:g} MB per file)"
    )


if __name__ == "__main__":
    main()
