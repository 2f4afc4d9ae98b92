"""The counterfactual chain on shapes scenes: each step's throughput, and how well the quality
check keeps good edits, judged against the world's ground truth.

An edit is good when the removed object is really gone (background colour where it was, or, for
a ``repaint`` edit, the new shape in the old one's colour, as the world would draw it) and
nothing else changed (the other objects' pixels are as before). The quality check never sees
that truth; this script compares its decisions with it.

    python benchmarks/counterfactual_shapes.py --size 2000      # the chain alone, on the raw pool
    python benchmarks/counterfactual_shapes.py --recipe recipes/counterfactual.yaml   # filtered
"""

from __future__ import annotations

import argparse
import time
from functools import cache
from pathlib import Path

import numpy as np
import pyarrow as pa

from benchmark import curate as curation
from benchmark.device import default_device
from benchmark.ops import registry
from benchmark.ops.context import StepContext
from benchmark.pipeline import Runner
from benchmark.pools.shards import ShardReader
from benchmark.spec.load import load_recipe
from benchmark.store import Store
from benchmark.world import BACKGROUND, COLOURS, Obj, Scene, render

REPO = Path(__file__).resolve().parent.parent


def _painted_ok(edit: np.ndarray, where: np.ndarray, gone: dict, shape: str) -> bool:
    """The region shows ``shape`` where ``gone`` was, in its colour and size: its pixels match
    the world's drawing of it (IoU >= 0.8, allowing a 2-pixel shift: the mask came from a
    detector's box) better than a drawing of the old shape."""
    x, y = (gone["x0"] + gone["x1"]) // 2, (gone["y0"] + gone["y1"]) // 2
    seen = (np.abs(edit - COLOURS[gone["colour"]]).max(axis=2) < 30) & where

    def iou(name: str) -> float:
        im = np.asarray(render(Scene((Obj(name, gone["colour"], gone["size"], x, y),), 0)))
        drawn = np.abs(im.astype(int) - BACKGROUND).max(axis=2) > 24
        best = 0.0
        for dx in range(-2, 3):  # a wrapped-around rim lands outside ``where``
            for dy in range(-2, 3):
                shifted = np.roll(drawn, (dy, dx), axis=(0, 1)) & where
                best = max(best, (shifted & seen).sum() / max((shifted | seen).sum(), 1))
        return best

    new = iou(shape)
    return bool(new >= 0.8 and new > iou(gone["shape"]))


def truth(pool: pa.Table, edits: pa.Table, reader: ShardReader) -> dict[str, bool]:
    """Per edit uid: removed object gone (or replaced as named) and the others untouched."""
    uids = pool.column("uid").to_pylist()
    objects = dict(zip(uids, pool.column("gt_objects").to_pylist(), strict=True))
    images = dict(zip(uids, pool.column("image").to_pylist(), strict=True))
    out = {}
    for row in edits.to_pylist():
        objs = objects[row["parent_uid"]]
        edit = np.asarray(reader.read_image(row["image"])).astype(int)
        parent = np.asarray(reader.read_image(images[row["parent_uid"]])).astype(int)
        h, w = edit.shape[:2]
        gone = next(o for o in objs if o["shape"] == row["removed"])
        others = np.zeros((h, w), bool)
        for o in objs:
            if o is not gone:
                others[o["y0"] : o["y1"] + 1, o["x0"] : o["x1"] + 1] = True
        region = np.zeros((h, w), bool)
        region[gone["y0"] : gone["y1"] + 1, gone["x0"] : gone["x1"] + 1] = True
        where = region & ~others
        if not where.any():
            gone_ok = False
        elif row.get("added"):
            gone_ok = _painted_ok(edit, where, gone, row["added"])
        else:
            gone_ok = np.abs(edit[where] - BACKGROUND).max(axis=1).mean() < 20
        kept = others & ~region
        same = np.abs(edit[kept] - parent[kept]).max(axis=1).mean() < 8 if kept.any() else True
        out[row["uid"]] = bool(gone_ok and same)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", type=int, default=2000, help="shapes scenes in the pool")
    ap.add_argument("--runs", default="runs", help="run store (detector and reference are cached)")
    ap.add_argument("--device", default=default_device())
    ap.add_argument(
        "--recipe", default=str(REPO / "recipes" / "ablations" / "counterfactual_unfiltered.yaml")
    )
    args = ap.parse_args()

    spec = load_recipe(args.recipe, device=args.device)
    runner = Runner(Store(args.runs), args.device)
    params = spec.track.pool.model_copy(update={"size": args.size})
    pool = runner.pool(params)
    visible, _ = curation.split_hidden(pool)
    reader = ShardReader(runner.store.root)
    reference = cache(lambda: runner.reference(spec.track))
    detector = cache(lambda: runner.detector(spec.track))
    detector(), reference()  # trained (or found) before the timings start

    rows = []
    table = visible
    for i, step in enumerate(spec.recipe.steps):
        op = registry.get(step.op)
        ctx = StepContext(
            f"steps[{i}] ({op.name})",
            reader,
            i,
            runner.store.root / "bench",
            args.device,
            reference,
            detector,
            runner.store.root,
        )
        if op.name == "quality_check":
            edits = table.filter(pa.compute.is_valid(table.column("parent_uid")))
        n_in = table.num_rows
        t0 = time.perf_counter()
        table = op.fn(table, op.params.model_validate(step.params), ctx)
        wall = time.perf_counter() - t0
        rows.append((op.name, n_in, table.num_rows, ctx.samples_processed, wall, ctx.extra_costs))

    print(f"pool {args.size:,} shapes scenes, device {args.device}")
    head = ("rows in", "rows out", "processed", "wall s", "samples/s")
    print(f"{'step':<14}" + "".join(f"{h:>11}" for h in head))
    for name, n_in, n_out, done, wall, _ in rows:
        rate = done / wall if wall > 0 else float("nan")
        print(f"{name:<14}{n_in:>11,}{n_out:>11,}{done:>11,}{wall:>11.2f}{rate:>11.1f}")
    for name, *_, costs in rows:
        if costs:
            print(f"  {name}: {costs}")

    good = truth(pool, edits, reader)
    kept = set(table.column("uid").to_pylist()) & set(good)
    n_good = sum(good.values())
    tp = sum(good[u] for u in kept)
    print(f"edits {len(good):,}: good by ground truth {n_good:,} ({n_good / len(good):.3f})")
    print(
        f"quality_check kept {len(kept):,}: precision {tp / max(len(kept), 1):.3f}, "
        f"recall {tp / max(n_good, 1):.3f} (good edits kept), "
        f"bad edits rejected {(len(good) - n_good) - (len(kept) - tp):,} of {len(good) - n_good:,}"
    )


if __name__ == "__main__":
    main()
