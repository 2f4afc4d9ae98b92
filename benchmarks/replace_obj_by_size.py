"""replace_obj on `shapes`, split by the size of the object whose shape the negative caption
changes: which part of the task a recipe moves, per seed, from the trained models its results
name (those still in the run store).

The tiny scale's model sees 32 px images, where a small object is about 9 px across and a large
one 14; a recipe that teaches shape can only show it where the shape is visible. Items are drawn
exactly as the suite draws them (same seed), only more of them, for tighter per-seed numbers.

    python benchmarks/replace_obj_by_size.py counterfactual counterfactual_replace [--n 2000]
    python benchmarks/replace_obj_by_size.py runs/reference/<hash>    # any saved model directory
"""

from __future__ import annotations

import argparse
from collections import defaultdict
from pathlib import Path

import numpy as np

from benchmark.compare import welch
from benchmark.evaluate.shapes import choice_items, score_choices
from benchmark.leaderboard import load_results
from benchmark.models import clip


def split_accuracy(model: Path, n: int, image_size: int) -> dict[str, float]:
    """replace_obj accuracy over ``n`` items: all, and by the changed object's size."""
    items = choice_items("replace_obj", n)
    scores = score_choices(clip.create(str(model)), items, image_size)
    right = scores[:, 0] > scores[:, 1:].max(axis=1)
    size = np.array([objs[0].size for objs, _ in items])
    return {
        "all": float(right.mean()),
        "large": float(right[size == "large"].mean()),
        "small": float(right[size == "small"].mean()),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "recipes", nargs="+", help="recipe names with results on the leaderboard, or model dirs"
    )
    ap.add_argument("--leaderboard", default="leaderboard")
    ap.add_argument("--scale", default="tiny")
    ap.add_argument("--n", type=int, default=2000, help="replace_obj items (the suite uses 500)")
    ap.add_argument("--image-size", type=int, default=64, help="rendered scene size")
    args = ap.parse_args()
    results = load_results(Path(args.leaderboard), "shapes")
    by_recipe: dict[str, dict[str, list[float]]] = {}
    for name in args.recipes:
        runs = [r for r in results if r["recipe"] == name and r["scale"] == args.scale]
        models = sorted({Path(r["tasks"]["replace_obj"]["model"]) for r in runs})
        models = [m for m in models if m.is_dir()] or [p for p in [Path(name)] if p.is_dir()]
        if not models:
            raise SystemExit(f"{name}: no trained model of its results is in the run store")
        by_recipe[name] = defaultdict(list)
        for model in models:
            for part, acc in split_accuracy(model, args.n, args.image_size).items():
                by_recipe[name][part].append(100 * acc)
    parts = ("all", "large", "small")
    print(f"replace_obj accuracy (%), {args.n} items, per seed; mean")
    print(f"{'recipe':<26}" + "".join(f"{p:>30}" for p in parts))
    for name, acc in by_recipe.items():
        cells = [" ".join(f"{v:.1f}" for v in acc[p]) + f"; {np.mean(acc[p]):.1f}" for p in parts]
        print(f"{name:<26}" + "".join(f"{c:>30}" for c in cells))
    base, *others = args.recipes
    for name in others:
        cells = []
        for p in parts:
            a, b = by_recipe[name][p], by_recipe[base][p]
            if min(len(a), len(b)) < 2:
                cells.append("n/a")
                continue
            diff, half = welch(a, b)
            cells.append(f"{diff:+.1f} ± {half:.1f}" + (" *" if abs(diff) > half else ""))
        print(f"{name + ' − ' + base:<26}" + "".join(f"{c:>30}" for c in cells))


if __name__ == "__main__":
    main()
