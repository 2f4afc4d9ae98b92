"""Each recipe against a baseline recipe on every task: mean difference over seeds with a Welch
95% confidence interval, marked `*` where the interval excludes zero.

    python benchmarks/compare_recipes.py [--track shapes] [--scale tiny] [--baseline no_filter]
"""

from __future__ import annotations

import argparse
import math
from collections import defaultdict
from pathlib import Path

import numpy as np
from scipy import stats

from benchmark.leaderboard import load_results


def welch(a: list[float], b: list[float]) -> tuple[float, float]:
    """Mean of a - b and the half-width of its 95% Welch interval."""
    va, vb = np.var(a, ddof=1) / len(a), np.var(b, ddof=1) / len(b)
    se = math.sqrt(va + vb)
    if se == 0:
        return float(np.mean(a) - np.mean(b)), 0.0
    df = (va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1))
    return float(np.mean(a) - np.mean(b)), float(stats.t.ppf(0.975, df) * se)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--leaderboard", default="leaderboard")
    ap.add_argument("--track", default="shapes")
    ap.add_argument("--scale", default="tiny")
    ap.add_argument("--baseline", default="no_filter")
    args = ap.parse_args()
    results = [
        r for r in load_results(Path(args.leaderboard), args.track) if r["scale"] == args.scale
    ]
    versions = defaultdict(set)
    for r in results:
        versions[r["recipe"]].add(r["recipe_hash"])
    scores: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for r in results:
        # A recipe edited after it ran has results under two hashes: never pool them.
        name = r["recipe"]
        if len(versions[name]) > 1:
            name = f"{name}@{r['recipe_hash'][:8]}"
        for task, value in r["headline"].items():
            scores[name][task].append(100 * value)
    if args.baseline not in scores:
        raise SystemExit(f"no results for baseline '{args.baseline}' (one version) on this scale")
    base = scores.pop(args.baseline)
    tasks = list(base)
    print(f"difference to {args.baseline} in points (Welch 95% CI; * = CI excludes 0)")
    print(f"{'recipe':<22}" + "".join(f"{t:>16}" for t in tasks))
    for recipe, by_task in sorted(scores.items()):
        cells = []
        for t in tasks:
            if len(by_task[t]) < 2 or len(base[t]) < 2:
                cells.append(f"{'n/a':>16}")
                continue
            d, h = welch(by_task[t], base[t])
            mark = "*" if abs(d) > h else " "
            cells.append(f"{d:>+7.1f} ± {h:<5.1f}{mark}")
        print(f"{recipe:<22}" + "".join(cells))


if __name__ == "__main__":
    main()
