"""Before/after grid of counterfactual edits on coco-mini photos, with COCO's instance boxes as
the detector stand-in and the classical (OpenCV) inpainter: look at it to see whether the edits
remove what the edited caption says is gone.

    python benchmarks/counterfactual_grid.py --out runs/artifacts/counterfactual_grid.png
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import pyarrow as pa
from PIL import Image, ImageDraw

from benchmark import pools
from benchmark.ops import registry
from benchmark.ops.context import StepContext
from benchmark.ops.detect import DETECTION
from benchmark.pools.shards import ShardReader

REPO = Path(__file__).resolve().parent.parent


def _step(table: pa.Table, op: str, root: Path, **params) -> tuple[pa.Table, StepContext]:
    o = registry.get(op)
    ctx = StepContext(f"({op})", ShardReader(root), 0, root / "work", store_root=root)
    return o.fn(table, o.params.model_validate(params), ctx), ctx


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    data = Path(os.environ.get("SMALLCOMP_SAMPLES", REPO.parent / "shared" / "data"))
    ap.add_argument("--coco", default=str(data / "coco-mini"), help="COCO-layout root")
    ap.add_argument("--work", default="runs/artifacts/grid-work", help="pool and edit store")
    ap.add_argument("--out", default="runs/artifacts/counterfactual_grid.png")
    ap.add_argument("--n", type=int, default=8, help="edits shown")
    args = ap.parse_args()

    root = Path(args.work)
    params = pools.get("coco").params.model_validate({"root": args.coco, "split": "train2017"})
    table = pools.get("coco").build(params, root).table
    table, _ = _step(table, "keywords", root, vocabulary="coco")
    objects = table.column("gt_objects").to_pylist()
    keywords = table.column("keywords").to_pylist()
    dets = [
        [
            {"label": o["category"], "x0": x, "y0": y, "x1": x + w, "y1": y + h}
            | {"confidence": 1.0, "polygon": None}
            for o in objs
            for x, y, w, h in [o["bbox"]]
            if o["category"] in (kw or []) and w * h > 0.02 * 384 * 288
        ]
        for objs, kw in zip(objects, keywords, strict=True)
    ]
    table = table.drop_columns(["gt_objects"])
    table = table.append_column("detections", pa.array(dets, pa.list_(DETECTION)))
    table, ctx = _step(table, "inpaint", root, backend="classical", dilate=4, radius=5)
    table, ctx2 = _step(table, "edit_caption", root, vocabulary="coco", fallback="drop")
    print("inpaint:", ctx.extra_costs, "\nedit_caption:", ctx2.extra_costs)
    edits = table.filter(pa.compute.is_valid(table.column("parent_uid"))).to_pylist()
    parents = {r["uid"]: r for r in table.to_pylist()}
    seen, shown = set(), []
    for e in edits:
        if e["parent_uid"] in seen or len(shown) == args.n:
            continue
        seen.add(e["parent_uid"])
        shown.append(e)
    reader = ShardReader(root)
    side, text_h = 256, 54
    grid = Image.new("RGB", (2 * side, len(shown) * (side + text_h)), "white")
    draw = ImageDraw.Draw(grid)
    for i, e in enumerate(shown):
        parent = parents[e["parent_uid"]]
        y = i * (side + text_h)
        for j, ref in enumerate((parent["image"], e["image"])):
            im = reader.read_image(ref)
            im.thumbnail((side, side))
            grid.paste(im, (j * side, y))
        draw.text((4, y + side + 2), f"before: {parent['caption'][:60]}", fill="black")
        draw.text((4, y + side + 18), f"after:  {e['caption'][:60]}", fill="black")
        draw.text((4, y + side + 34), f"removed: {e['removed']}", fill="firebrick")
        print(f"{e['removed']:>12}: {parent['caption']!r} -> {e['caption']!r}")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    grid.save(args.out)
    print(f"{len(shown)} edits -> {args.out}")


if __name__ == "__main__":
    main()
