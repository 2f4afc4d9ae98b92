"""How well a track's leaderboard tells recipes apart, from its results: per task, chance, the
`no_filter` and best recipe's scores, item noise (the bootstrap spread over the eval items each
result records), seed noise (the spread over training seeds) with the 3-seed CI it gives, and
what is left with the seeds as blocks (``benchmark.seed_blocks``: the recipes' median CI and
the smallest difference two recipes can show); per recipe, the headline's CI both ways; and
the ranking agreement of two disjoint seed halves (Kendall tau, as the leaderboard states it).

    python benchmarks/resolving_power.py [--leaderboard leaderboard] [--track shapes]
        [--scale tiny] [--version 2] [--seeds 3]

`--seeds N` uses each recipe's first N seeds (the headline CI at the seeds a table shows).
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import numpy as np

from benchmark import leaderboard, seed_blocks

CHANCE = {"zeroshot": 1 / 36, "order": 1 / 5}  # every other shapes choice task: 1 of 2


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--leaderboard", default="leaderboard")
    p.add_argument("--track", default="shapes")
    p.add_argument("--scale", default="tiny")
    p.add_argument("--version", default="2", help="eval suite version")
    p.add_argument("--seeds", type=int, help="each recipe's first N seeds (default: all)")
    args = p.parse_args()
    results = [
        r
        for r in leaderboard.load_results(Path(args.leaderboard), args.track)
        if r["scale"] == args.scale and str(r.get("suite_version")) == args.version
    ]
    if not results:
        raise SystemExit(f"no results for {args.track}/{args.scale} suite v{args.version}")
    by: dict[str, list[dict]] = {}
    for r in sorted(results, key=lambda r: r["seed"]):
        by.setdefault(r["recipe"], []).append(r)
    if args.seeds:
        by = {k: v[: args.seeds] for k, v in by.items() if len(v) >= args.seeds}
    tasks = list(next(iter(by.values()))[0]["headline"])
    means = {k: {t: np.mean([r["headline"][t] for r in v]) for t in tasks} for k, v in by.items()}
    rows = leaderboard.rows([r for v in by.values() for r in v])
    print(f"{len(by)} recipes, seeds per recipe: {sorted({len(v) for v in by.values()})}\n")
    print(f"{'task':12s} {'chance':>7s} {'no_filter':>9s} {'best':>6s} {'(recipe)':24s}"
          f" {'item noise':>10s} {'seed sd':>8s} {'3-seed CI':>9s} {'blocked CI':>10s}"
          f" {'min diff':>8s}")  # fmt: skip
    for t in tasks:
        best = max(means, key=lambda k: means[k][t])
        items = [r["tasks"][t]["metrics"].get("item_se") for v in by.values() for r in v]
        item = float(np.median([x for x in items if x is not None])) if any(items) else math.nan
        sds = [np.std([r["headline"][t] for r in v], ddof=1) for v in by.values() if len(v) > 1]
        sd = float(np.median(sds)) if sds else math.nan
        ci3 = seed_blocks.t_quantile(2) * sd / math.sqrt(3)
        blocked = float(np.median([r["tasks"][t][1] for r in rows]))
        base = means.get("no_filter", {}).get(t, math.nan)
        print(
            f"{t:12s} {100 * CHANCE.get(t, 0.5):7.1f} {100 * base:9.1f} {100 * means[best][t]:6.1f}"
            f" {best:24s} {100 * item:10.2f} {100 * sd:8.2f} {100 * ci3:9.2f}"
            f" {100 * blocked:10.2f} {100 * leaderboard.min_detectable(rows, t):8.2f}"
        )
    heads = ", ".join(rows[0]["headline_tasks"])
    print(f"\nheadline (mean of {heads}): mean, blocked CI, own-seed CI")
    for r in rows:
        (m, h), (_, plain) = r["average"], r["seed_ci"][leaderboard.HEADLINE]
        print(
            f"  {r['recipe']:28s} {len(r['seeds'])} seeds  {100 * m:5.1f} ± {100 * h:.2f}"
            f"  (own seeds ± {100 * plain:.2f})"
        )
    print(
        f"  smallest difference two recipes can show: {100 * leaderboard.min_detectable(rows):.2f}"
    )
    tau, n = leaderboard.seed_halves_tau(rows)
    print(f"\nKendall tau between seed halves (alternate shared seeds): {tau:.2f} over {n} recipes")


if __name__ == "__main__":
    main()
